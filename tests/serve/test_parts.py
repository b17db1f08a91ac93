"""The server's small parts on their own: auth, body reading, routing names, settings, the
batcher, the wire-format check, metrics and the page (the whole server is in test_server.py)."""
import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnnbp.contract.errors import UsageError
from cnnbp.serve.auth import BearerAuth
from cnnbp.serve.batcher import Batcher
from cnnbp.serve.body import INLINE_BYTES, offload, read_body
from cnnbp.serve.classify import top_k
from cnnbp.serve.config import ServeConfig
from cnnbp.serve.connection import GuardedProtocol, Limits, protocol
from cnnbp.serve.errors import BadRequest, short_repr
from cnnbp.serve.metrics import Metrics, ModelStats
from cnnbp.serve.page import page
from cnnbp.serve.routes import ROUTES, allowed, route_name
from cnnbp.serve.v2 import infer_request
from cnnbp.serve.wire import MAX_TYPED_BYTES, check_request

# auth ------------------------------------------------------------------------------------------

def test_bearer_auth_reads_the_scheme_in_any_case_and_ignores_surrounding_space():
    auth = BearerAuth("s3cret")
    assert auth.required
    assert auth.allows(b"Bearer s3cret") and auth.allows(b"bEaReR  s3cret \t")
    assert not auth.allows(None) and not auth.allows(b"Bearer s3cre")
    assert not auth.allows(b"Basic s3cret") and not auth.allows(b"s3cret")


def test_no_token_allows_everything_and_a_non_utf8_token_is_its_own_bytes():
    assert not BearerAuth(None).required and BearerAuth(None).allows(None)
    token = b"\xff\xfeok".decode("utf-8", "surrogateescape")  # as os.environ gives it
    assert BearerAuth(token).allows(b"Bearer \xff\xfeok")


# body reading ----------------------------------------------------------------------------------

def _receiver(*chunks):
    """An ASGI receive() over ``chunks``, recording how many were taken."""
    taken = []

    async def receive():
        taken.append(1)
        if len(taken) > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[len(taken) - 1],
                "more_body": len(taken) < len(chunks)}
    return receive, taken


def test_a_body_in_chunks_is_joined():
    receive, _ = _receiver(b"ab", b"cd", b"e")
    assert asyncio.run(read_body({"headers": []}, receive, 10)) == b"abcde"


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read():
    receive, taken = _receiver(b"x" * 5)
    scope = {"headers": [(b"content-length", b"2000")]}
    with pytest.raises(BadRequest, match="body of 2000 bytes exceeds the limit of 1000") as e:
        asyncio.run(read_body(scope, receive, 1000))
    assert e.value.status == 413 and taken == []


def test_an_undeclared_body_over_the_limit_is_413_at_the_chunk_that_crosses_it():
    receive, taken = _receiver(b"x" * 6, b"x" * 6, b"x" * 6)
    with pytest.raises(BadRequest, match="exceeds the limit of 10 bytes") as e:
        asyncio.run(read_body({"headers": []}, receive, 10))
    assert e.value.status == 413 and len(taken) == 2


def test_the_request_bound_is_asked_before_reading_and_a_disconnect_is_400():
    seen = []

    def fits(size):
        seen.append(size)
        if size > 3:
            raise BadRequest("too big for its rows", 413)
    receive, taken = _receiver(b"abcd")
    with pytest.raises(BadRequest, match="too big"):
        asyncio.run(read_body({"headers": [(b"content-length", b"4")]}, receive, 100, fits))
    assert seen == [4] and taken == []
    receive, _ = _receiver()  # nothing: the client went away
    with pytest.raises(BadRequest, match="client disconnected") as e:
        asyncio.run(read_body({"headers": []}, receive, 100))
    assert e.value.status == 400


def test_small_parses_run_on_the_loop_and_large_ones_on_the_parse_thread():
    parser = ThreadPoolExecutor(1, thread_name_prefix="parse")
    where = lambda: threading.current_thread().name
    try:
        assert asyncio.run(offload(parser, where, INLINE_BYTES)) == threading.main_thread().name
        assert asyncio.run(offload(parser, where, INLINE_BYTES + 1)).startswith("parse")
    finally:
        parser.shutdown()


# classify's query ------------------------------------------------------------------------------

@pytest.mark.parametrize("query,k", [(b"", 3), (b"top_k=7", 7), (b"top_k=99", 99)])
def test_top_k_defaults_to_3(query, k):
    assert top_k({"query_string": query}, 10) == k


@pytest.mark.parametrize("query", [b"top_k=0", b"top_k=-1", b"top_k=two", b"top_k=%C2%B2"])
def test_top_k_must_be_a_whole_number_from_1(query):
    with pytest.raises(BadRequest, match="top_k must be a whole number from 1 to 10"):
        top_k({"query_string": query}, 10)


# routes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,name", [
    ("/v2/health/live", "health"), ("/", "page"), ("/v2", "server"), ("/metrics", "metrics"),
    ("/v2/models/stats", "stats"), ("/v2/models/digits/stats", "stats"),
    ("/v2/models/digits", "metadata"), ("/v2/models/digits/versions/1/ready", "metadata"),
    ("/v2/models/digits/infer", "infer"), ("/v2/models/digits/versions/2/infer", "infer"),
    ("/v2/models/digits/classify", "classify"), ("/v2/models/digits/config", "config"),
    ("/report.html", "report"), ("/v2/models/digits/report.html", "report"),
    ("/v2/repository/index", "index"),
    ("/v2/", "other"), ("/v2/models/digits/explain", "other"), ("/v2/models//infer", "other")])
def test_each_path_has_its_metrics_label(path, name):
    assert route_name(path) == name


def test_get_routes_allow_head_and_post_routes_only_post():
    methods = {allowed(route) for route in ROUTES}
    assert methods == {"GET, HEAD", "POST"}
    infer = next(r for r in ROUTES if r.path == "/v2/models/{name}/infer")
    assert allowed(infer) == "POST" and "HEAD" not in infer.methods


# settings --------------------------------------------------------------------------------------

def test_settings_default_rows_to_the_batch_and_bracket_an_ipv6_grpc_host():
    assert ServeConfig("b").rows_per_request == 64
    assert ServeConfig("b", max_batch=8, max_batch_rows=100).rows_per_request == 100
    assert ServeConfig("b", host="::1", grpc_port=9).grpc_address == "[::1]:9"
    assert ServeConfig("b", grpc_port=None).grpc_address is None
    with pytest.raises(AttributeError):  # frozen: a running server's settings cannot change
        ServeConfig("b").port = 1


@pytest.mark.parametrize("change,message", [
    ({"port": 70000}, "--port: must be from 0 to 65535, got 70000"),
    ({"grpc_port": 8000}, "--grpc-port 8000: the HTTP --port is 8000"),
    ({"max_batch": 0}, "--max-batch: must be at least 1, got 0"),
    ({"max_batch_rows": 0}, "--max-batch-rows: must be at least 1, got 0"),
    ({"max_header_bytes": 100}, "--max-header-bytes: must be at least 1024, got 100"),
    ({"timeout_body": 0.0}, "--timeout-body: must be a positive number of seconds, got 0.0"),
    ({"timeout_header": math.nan}, "--timeout-header: must be a positive number"),
    ({"grace": -1.0}, "--grace: must be a positive number of seconds, got -1.0"),
])
def test_settings_out_of_range_name_their_flag(change, message):
    with pytest.raises(UsageError) as e:
        ServeConfig("b", **change).check()
    assert message in str(e.value)


# the connection layer --------------------------------------------------------------------------

def test_the_protocol_class_carries_its_limits():
    limits = Limits(max_head=2048, max_connections=3)
    cls = protocol(limits)
    assert issubclass(cls, GuardedProtocol) and cls.limits is limits
    assert GuardedProtocol.limits == Limits()  # the base keeps its defaults


# the batcher -----------------------------------------------------------------------------------

def test_requests_waiting_together_run_as_one_batch_and_get_their_own_rows():
    calls, executions = [], []

    def double(x):
        calls.append(len(x))
        return x * 2

    async def main():
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(double, max_batch=8, max_delay=0.5, executor=pool,
                              on_execute=lambda rows, requests, *ns: executions.append(
                                  (rows, requests)), workers=1)
            xs = [np.full((1, 2), i, "float32") for i in range(3)]
            ys = await asyncio.gather(*(batcher.submit(x) for x in xs))
            await batcher.close()
        return xs, ys
    xs, ys = asyncio.run(main())
    assert all(np.array_equal(y, x * 2) for x, y in zip(xs, ys))
    assert sum(calls) == 3 and sum(r for _, r in executions) == 3
    assert len(calls) < 3, "no request was batched with another"


def test_no_delay_runs_each_request_alone():
    calls = []

    async def main():
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(lambda x: calls.append(len(x)) or x, 8, 0.0, pool)
            await asyncio.gather(*(batcher.submit(np.zeros((2, 1))) for _ in range(3)))
    asyncio.run(main())
    assert calls == [2, 2, 2]


# gRPC's wire check -----------------------------------------------------------------------------

def _infer_request(inputs: int = 1, typed: int = 0) -> bytes:
    from tritonclient.grpc import service_pb2 as pb
    request = pb.ModelInferRequest(model_name="digits")
    for i in range(inputs):
        tensor = request.inputs.add(name=f"input{i}", datatype="FP32", shape=[1, typed or 64])
        if typed:
            tensor.contents.fp32_contents.extend([0.5] * typed)
    if not typed:
        request.raw_input_contents.append(np.zeros(64, "<f4").tobytes())
    return request.SerializeToString()


def test_a_real_request_passes_the_wire_check():
    check_request(_infer_request())


def test_too_many_inputs_are_refused_from_the_wire():
    with pytest.raises(BadRequest, match="more than 8 inputs entries"):
        check_request(_infer_request(inputs=9))


def test_typed_contents_over_their_bound_are_413():
    with pytest.raises(BadRequest) as e:
        check_request(_infer_request(typed=MAX_TYPED_BYTES // 4 + 1024))
    assert e.value.status == 413


def test_a_truncated_message_is_refused():
    with pytest.raises(BadRequest):
        check_request(_infer_request()[:-10])


# metrics and the page --------------------------------------------------------------------------

def test_metrics_count_requests_by_route_status_and_protocol():
    metrics = Metrics()
    ModelStats("digits", metrics).queued(0.001)
    metrics.request("infer", 200, 0.002)
    metrics.request("infer", 200, 0.003)
    metrics.request("connection", 431, None)
    text = metrics.render().decode()
    assert 'cnnbp_requests_total{protocol="http",route="infer",status="200"} 2.0' in text
    assert 'cnnbp_requests_total{protocol="http",route="connection",status="431"} 1.0' in text
    assert 'cnnbp_request_seconds_count{route="infer"} 2.0' in text
    assert "cnnbp_queue_seconds_count 1.0" in text


def test_the_page_asks_for_a_token_only_when_the_server_needs_one():
    assert b"__NEEDS_TOKEN__" not in page(True)
    assert page(True).count(b"true") > page(False).count(b"true")


# the V2 envelope (pydantic) --------------------------------------------------------------------

def _doc(**input_fields):
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], **input_fields}]}


@pytest.mark.parametrize("doc,where,what", [
    (5, "the request", "must be a JSON object, got 5"),
    ({}, "inputs", "is missing"),
    ({"inputs": []}, "inputs", "at least 1 item"),
    (_doc(shape=[1, True]), "inputs[0].shape[1]", "must be a whole number, got True"),
    (_doc(shape=[1, -2]), "inputs[0].shape[1]", "must be >= 0, got -2"),
    (_doc(name=["input"]), "inputs[0].name", "must be a string"),
    (_doc(parameters={"binary_data_size": 2.5}), "inputs[0].parameters.binary_data_size",
     "must be a whole number, got 2.5"),
    ({**_doc(), "outputs": [{"parameters": 3}]}, "outputs[0].parameters",
     "must be a JSON object, got 3"),
    ({**_doc(), "parameters": []}, "parameters", "must be a JSON object, got []"),
])
def test_a_malformed_envelope_is_400_naming_the_field(doc, where, what):
    with pytest.raises(BadRequest) as e:
        infer_request(doc)
    message = str(e.value)
    assert e.value.status == 400 and message.startswith(f"{where}: ") and what in message
    assert '"inputs": [{"name", "datatype", "shape"' in message  # and what a request looks like


def test_a_good_envelope_keeps_its_values_and_unknown_fields():
    request = infer_request({**_doc(data=[1.0, 2.0], parameters={"binary_data_size": 8}),
                             "id": 7, "outputs": [{"name": "probabilities",
                                                   "parameters": {"classification": 2}}],
                             "future_field": True})
    assert request.inputs[0].shape == [1, 2] and request.inputs[0].data == [1.0, 2.0]
    assert request.inputs[0].parameters.binary_data_size == 8 and request.id == 7
    assert request.outputs[0].parameters.classification == 2
    assert "class_count" not in request.outputs[0].parameters.model_fields_set


def test_short_repr_cuts_long_values():
    assert short_repr("x" * 100) == repr("x" * 100)[:57] + "..." and short_repr(5) == "5"
