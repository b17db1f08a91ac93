"""The gRPC endpoint (V2 GRPCInferenceService) over real gRPC on loopback: the stock
tritonclient.grpc client, typed and raw contents, every error's status code, a bounded load."""
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from tests.conftest import ROOT
from tests.serve.conftest import Server

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def client(server):
    import tritonclient.grpc as grpcclient
    c = grpcclient.InferenceServerClient(server.grpc_target)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def infer_raw(client, x, model="digits", class_count=0, headers=None):
    import tritonclient.grpc as grpcclient
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = grpcclient.InferRequestedOutput("probabilities", class_count=class_count)
    return client.infer(model, [inp], outputs=[out], headers=headers)


def test_stock_client_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("mnist1d", "1")
    meta = client.get_server_metadata()
    assert meta.name == "cnnbp" and "binary_tensor_data" in meta.extensions
    m = client.get_model_metadata("digits")
    assert m.versions == ["1"] and m.platform == "onnxruntime_onnx"
    assert [(i.name, i.datatype, list(i.shape)) for i in m.inputs] == \
        [("input", "FP32", [-1, 8, 8, 1]), ("pixels", "UINT8", [-1, 8, 8, 1])]
    assert (m.outputs[0].name, list(m.outputs[0].shape)) == ("probabilities", [-1, 10])
    config = client.get_model_config("digits").config
    assert config.parameters["class_names"].string_value.startswith("[")


def test_stock_client_infer_equals_onnx_runtime(client, session):
    x = RNG.normal(size=(5, 8, 8, 1)).astype("float32")
    result = infer_raw(client, x)
    np.testing.assert_allclose(result.as_numpy("probabilities"),
                               session.run(None, {"input": x})[0], atol=1e-6)
    assert result.get_response().model_version == "1"


def test_typed_contents_equal_raw(stub, session):
    x = RNG.normal(size=(2, 8, 8, 1)).astype("float32")
    request = pb.ModelInferRequest(model_name="digits", id="typed")
    request.inputs.add(name="input", datatype="FP32", shape=x.shape,
                       contents=pb.InferTensorContents(fp32_contents=x.reshape(-1).tolist()))
    reply = stub.ModelInfer(request)
    assert reply.id == "typed" and reply.outputs[0].datatype == "FP32"
    assert list(reply.outputs[0].shape) == [2, 10]
    got = np.frombuffer(reply.raw_output_contents[0], "<f4").reshape(2, 10)
    np.testing.assert_allclose(got, session.run(None, {"input": x})[0], atol=1e-6)


def test_class_count_gives_tritons_strings(client, session):
    x = RNG.normal(size=(2, 8, 8, 1)).astype("float32")
    top = infer_raw(client, x, class_count=3).as_numpy("probabilities")
    assert top.shape == (2, 3)
    expected = session.run(None, {"input": x})[0]
    for row, probs in zip(top, expected):
        parsed = [item.decode().split(":", 2) for item in row]
        assert [int(i) for _, i, _ in parsed] == list(np.argsort(-probs)[:3])
        assert all(abs(float(s) - probs[int(i)]) < 1e-5 for s, i, _ in parsed)
        assert all(label for _, _, label in parsed)


def request(x=None, *, model="digits", name="input", datatype="FP32", shape=None, raw=None,
            outputs=()):
    x = RNG.normal(size=(1, 8, 8, 1)).astype("float32") if x is None else x
    r = pb.ModelInferRequest(model_name=model)
    r.inputs.add(name=name, datatype=datatype, shape=list(x.shape) if shape is None else shape)
    r.raw_input_contents.append(x.astype("<f4").tobytes() if raw is None else raw)
    for out in outputs:
        r.outputs.add(name=out)
    return r


BAD = [
    (request(model="nope"), grpc.StatusCode.NOT_FOUND, "unknown model 'nope'; serving: digits"),
    (request(model="bad/name"), grpc.StatusCode.INVALID_ARGUMENT, "invalid model name"),
    (request(name="x"), grpc.StatusCode.INVALID_ARGUMENT, "missing input 'input'"),
    (request(datatype="FP64"), grpc.StatusCode.INVALID_ARGUMENT, "must have datatype FP32"),
    (request(shape=[1, 8, 8]), grpc.StatusCode.INVALID_ARGUMENT,
     "this model takes [batch, 8, 8, 1]"),
    (request(raw=b"\0" * 10), grpc.StatusCode.INVALID_ARGUMENT,
     "raw_input_contents holds 10 bytes, but shape [1, 8, 8, 1] of FP32 needs 256"),
    (request(np.full((1, 8, 8, 1), np.nan, "float32")), grpc.StatusCode.INVALID_ARGUMENT,
     "contains NaN or Inf"),
    (request(np.full((1, 8, 8, 1), 3e38, "float32")), grpc.StatusCode.INVALID_ARGUMENT,
     "not finite"),
    (request(outputs=["logits"]), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown output 'logits'; this model has one output, 'probabilities'"),
    (request(np.zeros((65, 8, 8, 1), "float32")), grpc.StatusCode.RESOURCE_EXHAUSTED,
     "at most 64 per request"),
    (pb.ModelInferRequest(model_name="digits"), grpc.StatusCode.INVALID_ARGUMENT,
     "the request has no inputs"),
]


@pytest.mark.parametrize("req,code,message", BAD, ids=[m[:24] for _, _, m in BAD])
def test_bad_requests_get_their_status_code(stub, req, code, message):
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(req, timeout=30)
    assert info.value.code() == code and message in info.value.details(), info.value.details()


def test_more_bad_requests(stub):
    typed = pb.ModelInferRequest(model_name="digits")
    typed.inputs.add(name="input", datatype="FP32", shape=[1, 8, 8, 1],
                     contents=pb.InferTensorContents(int_contents=[1] * 64))
    both = request()
    both.inputs[0].contents.fp32_contents.extend([0.0] * 64)
    count = request()
    count.outputs.add(name="probabilities").parameters["classification"].string_param = "3"
    for req, message in [(typed, "FP32 values go in contents.fp32_contents"),
                         (both, "both contents and raw_input_contents"),
                         (count, "classification must be an int64_param")]:
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(req, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in info.value.details(), info.value.details()
    for call, req in [(stub.ModelReady, pb.ModelReadyRequest(name="nope")),
                      (stub.ModelMetadata, pb.ModelMetadataRequest(name="digits", version="2"))]:
        with pytest.raises(grpc.RpcError) as info:
            call(req, timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:  # outside the V2 core
        stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_message_over_max_body_is_resource_exhausted(stub, server):
    big = np.zeros((2000, 8, 8, 1), "float32")  # 512 kB > --max-body 300000
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request(big), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_requests_are_counted_in_metrics(stub, server):
    from tests.serve.test_abuse import metric
    from tests.serve.test_server import get
    before = get(f"{server.url}/metrics")[2].decode()
    stub.ModelInfer(request(), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(request(model="nope"), timeout=30)
    after = get(f"{server.url}/metrics")[2].decode()
    for route, status in [("infer", "OK"), ("infer", "NOT_FOUND")]:
        assert metric(after, route, status, "grpc") == metric(before, route, status, "grpc") + 1
    assert '"gRPC ModelInfer" NOT_FOUND' in server.log()


def test_token_rules_match_http(repo):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    s = Server(repo / "bundles", "--token", "s3cret")
    try:
        c = grpcclient.InferenceServerClient(s.grpc_target)
        assert c.is_server_live() and c.is_server_ready()  # health needs no token, as over HTTP
        x = np.zeros((1, 8, 8, 1), "float32")
        for headers in (None, {"authorization": "Bearer wrong"}):
            with pytest.raises(InferenceServerException) as info:
                infer_raw(c, x, headers=headers)
            assert "UNAUTHENTICATED" in str(info.value.status()) and "token" in info.value.message()
        for scheme in ("Bearer", "bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
            assert infer_raw(c, x, headers={"authorization": f"{scheme} s3cret"}) \
                .as_numpy("probabilities").shape == (1, 10)
        c.close()
    finally:
        s.stop()


def test_bounded_load_zero_errors_and_exact_answers(server, session):
    """3,000 requests at concurrency 48 over gRPC, batched with HTTP's batcher; all checked."""
    n = 3000
    inputs = RNG.normal(size=(n, 1, 8, 8, 1)).astype("float32")
    expected = session.run(None, {"input": inputs.reshape(n, 8, 8, 1)})[0]
    channel = grpc.insecure_channel(server.grpc_target)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        def one(i):
            reply = stub.ModelInfer(request(inputs[i]), timeout=60)
            return np.frombuffer(reply.raw_output_contents[0], "<f4")
        with ThreadPoolExecutor(48) as pool:
            got = np.stack(list(pool.map(one, range(n))))
    finally:
        channel.close()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_predict_over_grpc_matches_local(server, repo, tmp_path):
    from tests.serve.test_server import png_bytes
    image = tmp_path / "d.png"
    image.write_bytes(png_bytes((RNG.random((8, 8)) * 255).astype("uint8")))
    signal = tmp_path / "s.json"
    signal.write_text(str(RNG.normal(size=40).tolist()))
    for model, f in (("digits", image), ("mnist1d", signal)):
        local = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict",
                                str(repo / "bundles" / model), str(f)], capture_output=True,
                               text=True)
        remote = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict", "--url",
                                 f"grpc://{server.grpc_target}", "--model", model, str(f)],
                                capture_output=True, text=True)
        assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
        assert local.stdout.split(": ", 1)[1] == remote.stdout.split(": ", 1)[1]
    wrong = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict", "--url",
                            f"grpc://{server.grpc_target}", "--model", "nope", str(image)],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "NOT_FOUND" in wrong.stderr and "Traceback" not in wrong.stderr


def test_grpc_port_in_use_is_a_usage_error(repo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve",
                               str(repo / "bundles"), "--port", "0", "--grpc-port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"--grpc-port {port}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_grpc_serves_http_only(repo):
    s = Server(repo / "bundles" / "digits", "--no-grpc")
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.grpc_port), timeout=2).close()
        assert "grpc://" not in s.log()
    finally:
        s.stop()


def test_calls_still_running_when_the_grace_runs_out_get_unavailable(repo):
    """With 0.2 s of grace, three ~1 s calls cannot all finish: those cut off get UNAVAILABLE
    (retryable, the stock client's InferenceServerException), never INTERNAL or UNKNOWN, and
    the server stops cleanly."""
    import signal
    import urllib.request

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    s = Server(repo / "bundles", max_body=64 << 20, max_batch_rows=65536, grace=0.2)
    x = RNG.normal(size=(65536, 8, 8, 1)).astype("float32")
    client = grpcclient.InferenceServerClient(s.grpc_target)

    def call():
        inp = grpcclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        try:
            client.infer("digits", [inp], client_timeout=600)
            return "OK", None
        except InferenceServerException as exc:
            return exc.status(), exc.message()

    def model_calls() -> float:  # ONNX Runtime calls so far, from /metrics
        with urllib.request.urlopen(f"{s.url}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("cnnbp_batch_size_count"))

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(call) for _ in range(3)]
        while model_calls() == 0:  # the first call is being computed: it is in flight
            assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]
        s.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    client.close()
    assert s.wait() in (0, -signal.SIGTERM)
    log = s.log()
    codes = [code for code, _ in results]
    assert "StatusCode.UNAVAILABLE" in codes, (results, log)
    assert set(codes) <= {"OK", "StatusCode.UNAVAILABLE"}, (results, log)
    assert log.rstrip().endswith("stopped"), log
