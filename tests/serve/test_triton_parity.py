"""Triton's protocol beyond the V2 core, through the stock tritonclient (HTTP and gRPC) against
a real server: model configuration, statistics, gRPC streaming; and the bundle's report page."""
import json
import queue
import shutil
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.serve.conftest import Server, post

RNG = np.random.default_rng(24)


@pytest.fixture(scope="module")
def clients(server):
    h = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    g = grpcclient.InferenceServerClient(server.grpc_target)
    yield h, g
    h.close()
    g.close()


def inputs(module, x, name="input"):
    inp = module.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return [inp]


def rows(n, width=1):
    return RNG.normal(size=(n, 8, 8, width)).astype("float32")


def test_extensions_advertised(clients):
    h, g = clients
    for extensions in (h.get_server_metadata()["extensions"],
                       g.get_server_metadata().extensions):
        assert {"model_configuration", "statistics", "streaming"} <= set(extensions)


def test_http_config_is_the_grpc_config_as_json(clients, server):
    h, g = clients
    doc = h.get_model_config("digits")
    assert doc["max_batch_size"] == 64 and doc["platform"] == "onnxruntime_onnx"
    assert [(i["name"], i["data_type"], i["dims"]) for i in doc["input"]] == \
        [("input", "TYPE_FP32", [8, 8, 1]), ("pixels", "TYPE_UINT8", [8, 8, 1])]
    # a request sends exactly one of them: neither reads as required
    assert [i.get("optional") for i in doc["input"]] == [True, True]
    assert doc["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]}]
    assert len(json.loads(doc["parameters"]["class_names"]["string_value"])) == 10
    assert json_format.ParseDict(doc, mc.ModelConfig()) == g.get_model_config("digits").config
    assert h.get_model_config("mnist1d", "1")["input"][0]["dims"] == [40, 1]
    with pytest.raises(InferenceServerException, match="version 1 only"):
        h.get_model_config("digits", "2")


def counts(stats: dict) -> dict:
    """The counters of one model_stats entry (HTTP JSON, or gRPC turned into the same JSON)."""
    s = stats["inference_stats"]
    return {"inference": int(stats.get("inference_count", 0)),
            "execution": int(stats.get("execution_count", 0)),
            **{k: int(s.get(k, {}).get("count", 0)) for k in
               ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")},
            "batched": sum(int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", []))}


def http_stats(h, model="digits") -> dict:
    (entry,) = h.get_inference_statistics(model)["model_stats"]
    assert entry["name"] == model and entry["version"] == "1"
    return entry


def grpc_stats(g, model="digits") -> dict:
    (entry,) = g.get_inference_statistics(model).model_stats
    return json_format.MessageToDict(entry, preserving_proto_field_name=True)


def test_statistics_count_every_request(clients, server):
    h, g = clients
    before, other = counts(http_stats(h)), counts(http_stats(h, "mnist1d"))
    started_ms = time.time() * 1000
    for x in (rows(1), rows(1), rows(3)):
        h.infer("digits", inputs(httpclient, x))
        g.infer("digits", inputs(grpcclient, x))
    for client, module in ((h, httpclient), (g, grpcclient)):
        with pytest.raises(InferenceServerException, match="shape"):
            client.infer("digits", inputs(module, rows(1, width=2)))
    after = counts(http_stats(h))
    assert after == counts(grpc_stats(g))  # one set of counters, two protocols
    for key in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert after[key] - before[key] == 6, key
    assert after["fail"] - before["fail"] == 2
    assert after["inference"] - before["inference"] == 10  # rows, as Triton counts them
    assert 1 <= after["execution"] - before["execution"] <= 6
    assert after["batched"] == after["execution"]
    assert counts(http_stats(h, "mnist1d")) == other
    entry = http_stats(h)
    assert entry["last_inference"] >= started_ms - 1
    spent = {k: d["ns"] for k, d in entry["inference_stats"].items()}
    assert spent["success"] > spent["compute_infer"] > 0 and spent["compute_input"] > 0
    everything = h.get_inference_statistics()["model_stats"]
    assert [s["name"] for s in everything] == ["digits", "mnist1d"]
    assert [s.name for s in g.get_inference_statistics().model_stats] == ["digits", "mnist1d"]


def test_unknown_model_or_version(clients):
    h, g = clients
    assert h.get_inference_statistics("digits", "1")["model_stats"][0]["name"] == "digits"
    for call in (h.get_inference_statistics, g.get_inference_statistics, h.get_model_config,
                 g.get_model_config):
        with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
            call("nope")
        with pytest.raises(InferenceServerException, match="version 1 only, not '3'"):
            call("digits", "3")


def test_classify_is_counted(clients, server):
    h, _ = clients
    before = counts(http_stats(h, "mnist1d"))
    status, _, _ = post(f"{server.url}/v2/models/mnist1d/classify",
                        json.dumps({"signal": RNG.normal(size=40).tolist()}).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200
    assert post(f"{server.url}/v2/models/mnist1d/classify", b'{"signal": [1]}',
                {"Content-Type": "application/json"})[0] == 400
    after = counts(http_stats(h, "mnist1d"))
    assert (after["success"] - before["success"], after["fail"] - before["fail"]) == (1, 1)


def test_stream_answers_each_request_in_order(clients, server, session):
    _, g = clients
    answers = queue.Queue()
    g.start_stream(callback=lambda result, error: answers.put((result, error)))
    good = [rows(1), rows(2), rows(1), rows(4)]
    try:
        g.async_stream_infer("digits", inputs(grpcclient, good[0]), request_id="0")
        (first, error), = [answers.get(timeout=30)]
        assert error is None and first.get_response().id == "0"
        # the open stream holds nothing up: other requests are answered meanwhile
        assert g.infer("digits", inputs(grpcclient, rows(1))).as_numpy("probabilities") \
            .shape == (1, 10)
        assert post(f"{server.url}/v2/models/mnist1d/infer", b"{}")[0] == 400
        g.async_stream_infer("digits", inputs(grpcclient, good[1]), request_id="1")
        g.async_stream_infer("digits", inputs(grpcclient, rows(1, width=2)), request_id="bad")
        g.async_stream_infer("nope", inputs(grpcclient, good[0]), request_id="lost")
        g.async_stream_infer("digits", inputs(grpcclient, good[2]), request_id="2")
        g.async_stream_infer("digits", inputs(grpcclient, good[3]), request_id="3")
        got = [answers.get(timeout=30) for _ in range(5)]
    finally:
        g.stop_stream()
    assert [r.get_response().id if r else None for r, _ in got] == ["1", None, None, "2", "3"]
    assert "has shape [1, 8, 8, 2]" in got[1][1].message()
    assert "unknown model 'nope'" in got[2][1].message()
    for (result, _), x in zip([(first, None)] + [got[0], got[3], got[4]], good):
        np.testing.assert_allclose(result.as_numpy("probabilities"),
                                   session.run(None, {"input": x})[0], atol=1e-6)
    assert answers.empty()


def test_stream_requests_are_counted_and_logged(clients, server):
    _, g = clients
    before = counts(grpc_stats(g))
    answers = queue.Queue()
    g.start_stream(callback=lambda result, error: answers.put(error))
    try:
        for i in range(8):
            g.async_stream_infer("digits", inputs(grpcclient, rows(1, 2 if i % 4 == 3 else 1)))
        errors = [answers.get(timeout=30) for _ in range(8)]
    finally:
        g.stop_stream()
    assert [e is not None for e in errors] == [False, False, False, True] * 2
    after = counts(grpc_stats(g))
    assert (after["success"] - before["success"], after["fail"] - before["fail"]) == (6, 2)
    assert '"gRPC ModelStreamInfer" INVALID_ARGUMENT' in server.log()


def test_methods_left_out_say_so_plainly(server):
    channel = grpc.insecure_channel(server.grpc_target)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == ("SystemSharedMemoryStatus is not served: cnnbp serve has "
                                        "no shared memory: send the tensors in the request")
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=30)
        assert [(m.name, m.state) for m in index.models] == [("digits", "READY"),
                                                             ("mnist1d", "READY")]
    finally:
        channel.close()


def test_report_routes_without_one(server):
    status, _, body = post(f"{server.url}/report.html", None, method="GET")
    assert status == 404 and "/v2/models/NAME/report.html" in json.loads(body)["error"]
    status, headers, body = post(f"{server.url}/v2/models/digits/report.html", None, method="GET")
    assert status == 404 and headers["content-type"] == "application/json"
    assert "model 'digits' has no report.html" in json.loads(body)["error"]


def test_report_of_the_one_model_served_the_token_and_shutdown(repo, tmp_path):
    bundle = tmp_path / "digits"
    shutil.copytree(repo / "bundles" / "digits", bundle)
    page = "<!doctype html><title>digits</title><p>trained and checked \u2713".encode()
    (bundle / "report.html").write_bytes(page)
    s = Server(bundle, "--token", "s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    try:
        assert post(f"{s.url}/report.html", None, method="GET")[0] == 401
        for path in ("/report.html", "/v2/models/digits/report.html"):
            for method in ("GET", "HEAD"):
                status, headers, body = post(s.url + path, None, auth, method=method)
                assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
                assert body == (page if method == "GET" else b"")
                assert headers["content-security-policy"].startswith("sandbox; default-src 'none'")
        assert post(f"{s.url}/report.html", b"", auth, method="POST")[0] == 405
        (bundle / "report.html").unlink()  # read per request: a rewritten report shows at once
        status, headers, body = post(f"{s.url}/report.html", None, auth, method="GET")
        assert status == 404 and headers["content-type"] == "application/json"
        assert "has no report.html" in json.loads(body)["error"]
        g = grpcclient.InferenceServerClient(s.grpc_target)
        for headers in (None, {"authorization": "Bearer s3cret"}):
            answers = queue.Queue()
            g.start_stream(callback=lambda result, error, answers=answers:
                           answers.put((result, error)),
                           headers=headers)
            if headers is None:  # refused as it opens, before any request is sent
                result, error = answers.get(timeout=30)
                assert "UNAUTHENTICATED" in str(error.status()) and "token" in error.message()
            else:
                g.async_stream_infer("digits", inputs(grpcclient, rows(1)), request_id="7")
                result, error = answers.get(timeout=30)
                assert error is None and result.get_response().id == "7"
            g.stop_stream()
        g.start_stream(callback=lambda result, error: answers.put((result, error)),
                       headers={"authorization": "Bearer s3cret"})
        g.async_stream_infer("digits", inputs(grpcclient, rows(1)), request_id="8")
        assert answers.get(timeout=30)[0].get_response().id == "8"
        s.proc.terminate()  # the stream is open and idle: it ends, and holds no one up
        s.wait(timeout=10)  # the grace is 30 s
        assert "stopped" in s.log()
        g.close()
    finally:
        s.stop()
