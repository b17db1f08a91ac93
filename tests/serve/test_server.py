"""Every endpoint and every error case of the server, over real HTTP on loopback."""
import http.client
import io
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import Server, infer_json, post

RNG = np.random.default_rng(0)


def get(url):
    return post(url, None, method="GET")


def test_health_and_metadata(server):
    assert get(f"{server.url}/v2/health/live")[0] == 200
    status, _, body = get(f"{server.url}/v2/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    meta = json.loads(get(f"{server.url}/v2")[2])
    assert "binary_tensor_data" in meta["extensions"]
    for path in ("/v2/models/digits", "/v2/models/digits/versions/1"):
        m = json.loads(get(server.url + path)[2])
        assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 8, 8, 1]},
                               {"name": "pixels", "datatype": "UINT8", "shape": [-1, 8, 8, 1]}]
        assert m["outputs"][0]["name"] == "probabilities" and m["outputs"][0]["shape"] == [-1, 10]
    assert json.loads(get(f"{server.url}/v2/models/mnist1d/ready")[2])["ready"] is True


def test_json_infer_equals_onnx_runtime(server, session):
    x = RNG.normal(size=(3, 8, 8, 1)).astype("float32")
    status, _, body = post(f"{server.url}/v2/models/digits/infer", infer_json(x))
    doc = json.loads(body)
    assert status == 200 and doc["id"] == "t1" and doc["model_name"] == "digits"
    out = doc["outputs"][0]
    assert out["shape"] == [3, 10] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 10),
                               session.run(None, {"input": x})[0], atol=1e-6)


def binary_request(x, binary_output=True, truncate=0):
    raw = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"binary_data": binary_output}}]}).encode()
    return head + raw[:len(raw) - truncate], {"Inference-Header-Content-Length": str(len(head))}


def test_binary_infer_both_ways(server, session):
    x = RNG.normal(size=(2, 8, 8, 1)).astype("float32")
    body, headers = binary_request(x)
    status, resp_headers, resp = post(f"{server.url}/v2/models/digits/infer", body, headers)
    assert status == 200
    n = int(resp_headers["inference-header-content-length"])
    head = json.loads(resp[:n])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 2 * 10 * 4
    got = np.frombuffer(resp[n:], "<f4").reshape(2, 10)
    np.testing.assert_allclose(got, session.run(None, {"input": x})[0], atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_tritons_own_http_client(server, session, binary):
    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("digits")
    x = RNG.normal(size=(4, 8, 8, 1)).astype("float32")
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("digits", [inp], outputs=[out])
    np.testing.assert_allclose(result.as_numpy("probabilities"),
                               session.run(None, {"input": x})[0], atol=1e-6)
    # the client's default mode: binary tensors in the request, no outputs named
    plain = httpclient.InferInput("input", list(x.shape), "FP32")
    plain.set_data_from_numpy(x)
    default = client.infer("digits", [plain])
    np.testing.assert_allclose(default.as_numpy("probabilities"),
                               session.run(None, {"input": x})[0], atol=1e-6)
    client.close()


@pytest.mark.parametrize("body,headers,status,message", [
    (lambda x: infer_json(x, shape=[1, 8, 8, 2]), {}, 400, "this model takes [batch, 8, 8, 1]"),
    (lambda x: infer_json(x, datatype="INT32"), {}, 400, "must have datatype FP32"),
    (lambda x: infer_json(x, name="image"), {}, 400, "missing input 'input'"),
    (lambda x: b'{"inputs": [', {}, 400, "malformed JSON"),
    (lambda x: binary_request(x, truncate=8)[0], None, 400, "truncated"),
    (lambda x: infer_json(np.full_like(x, np.nan)), {}, 400, "JSON has no NaN"),
    (lambda x: binary_request(np.full_like(x, np.inf))[0], "inf", 400, "NaN or Inf"),
    (lambda x: b"{}", {}, 400, '"inputs"'),
])
def test_bad_infer_requests(server, body, headers, status, message):
    x = RNG.normal(size=(1, 8, 8, 1)).astype("float32")
    data = body(x)
    if headers is None:
        headers = binary_request(x, truncate=8)[1]
    elif headers == "inf":
        headers = binary_request(x)[1]
    code, _, resp = post(f"{server.url}/v2/models/digits/infer", data, headers)
    assert code == status and message in json.loads(resp)["error"]


def test_other_errors_are_4xx_with_a_message(server):
    cases = [
        (post, "/v2/models/nope/infer", b"{}", 404, "unknown model 'nope'"),
        (post, "/v2/models/digits/versions/2/infer", b"{}", 404, "version 1 only"),
        (post, "/v2/models/dig%20its/infer", b"{}", 400, "invalid model name"),
        (post, "/v2/models/..%2F..%2Fetc/infer", b"{}", 404, "no route"),
        (get, "/v2/models/digits/infer", None, 405, "takes POST"),
        (get, "/v3/anything", None, 404, "no route"),
        (post, "/v2/models/digits/classify", b"not an image", 400, "cannot decode the image"),
        (post, "/v2/models/digits/infer", b"x" * 300001, 413, "exceeds the limit"),
    ]
    for fn, path, body, status, message in cases:
        code, _, resp = fn(server.url + path, body) if fn is post else fn(server.url + path)
        assert code == status, path
        assert message in json.loads(resp)["error"], path
    assert get(f"{server.url}/v2/health/live")[0] == 200  # still serving


def png_bytes(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_classify_an_image_and_a_signal(server, session, repo):
    pixels = (RNG.random((16, 16)) * 255).astype("uint8")
    status, _, body = post(f"{server.url}/v2/models/digits/classify?top_k=3", png_bytes(pixels),
                           {"content-type": "image/png"})
    doc = json.loads(body)
    assert status == 200 and len(doc["top_k"]) == 3
    probs = [t["probability"] for t in doc["top_k"]]
    assert probs == sorted(probs, reverse=True)
    # a bare .keras bundle has no record: pixels / 255, no normalization, bilinear resize
    # (trained runs are checked against their own pipeline in tests/test_roundtrip.py)
    x = np.asarray(Image.fromarray(pixels).convert("L").resize((8, 8), Image.Resampling.BILINEAR),
                   "float32")[None, :, :, None] / 255
    expected = session.run(None, {"input": x})[0][0]
    assert doc["top_k"][0]["index"] == int(expected.argmax())
    assert doc["top_k"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    signal_doc = json.dumps({"signal": RNG.normal(size=40).tolist()}).encode()
    status, _, body = post(f"{server.url}/v2/models/mnist1d/classify", signal_doc,
                           {"content-type": "application/json"})
    assert status == 200 and len(json.loads(body)["top_k"]) == 3
    status, _, body = post(f"{server.url}/v2/models/mnist1d/classify", png_bytes(pixels),
                           {"content-type": "image/png"})
    assert status == 400 and "1-D signals" in json.loads(body)["error"]


def test_metrics_in_prometheus_format(server):
    post(f"{server.url}/v2/models/nope/infer", b"{}")
    text = get(f"{server.url}/metrics")[2].decode()
    assert 'cnnbp_requests_total{protocol="http",route="infer",status="200"}' in text
    assert 'status="404"' in text
    for name in ("cnnbp_request_seconds_bucket", "cnnbp_batch_size_bucket",
                 "cnnbp_queue_seconds_count"):
        assert name in text
    assert "# TYPE cnnbp_request_seconds histogram" in text


def test_load_zero_errors_and_exact_answers(server, session):
    """2,000 requests at concurrency 32 through dynamic batching; each answer checked."""
    import http.client
    inputs = RNG.normal(size=(2000, 1, 8, 8, 1)).astype("float32")
    expected = session.run(None, {"input": inputs.reshape(2000, 8, 8, 1)})[0]
    local = threading.local()

    def one(i):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body, headers = binary_request(inputs[i])
        local.conn.request("POST", "/v2/models/digits/infer", body, headers)
        resp = local.conn.getresponse()
        data = resp.read()
        n = int(resp.getheader("inference-header-content-length"))
        return resp.status, np.frombuffer(data[n:], "<f4").reshape(1, 10)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(2000)))
    assert [s for s, _ in results].count(200) == 2000
    got = np.concatenate([r for _, r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    text = get(f"{server.url}/metrics")[2].decode()
    batched = [line for line in text.splitlines()
               if line.startswith('cnnbp_batch_size_bucket{le="1.0"}')]
    total = [line for line in text.splitlines() if line.startswith("cnnbp_batch_size_count")]
    assert float(batched[0].split()[-1]) < float(total[0].split()[-1]), "no request was batched"


def _sigterm_during_three_large_requests(s: Server, x: np.ndarray):
    """Send three requests of ``x`` (65,536 rows: ~1 s of compute each here), SIGTERM the
    server once their bodies are written, and return [(status, headers, scores or body)]
    with the time of the signal and of each answer."""
    body, headers = binary_request(x)
    finished, sent = [], threading.Semaphore(0)

    def call():
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=600)
        conn.request("POST", "/v2/models/digits/infer", body, headers)
        sent.release()  # the whole body is written: the server holds the request
        resp = conn.getresponse()
        status, resp_headers, data = resp.status, dict(resp.headers), resp.read()
        finished.append(time.perf_counter())
        conn.close()
        if status != 200:
            return status, resp_headers, data
        n = int(resp_headers.get("inference-header-content-length", 0))
        return status, resp_headers, np.frombuffer(data[n:], "<f4").reshape(-1, 10)

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(call) for _ in range(3)]
        for _ in futures:
            assert sent.acquire(timeout=60), "a request was not sent"
        signalled = time.perf_counter()
        s.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    return results, signalled, finished


def test_graceful_shutdown_finishes_in_flight_requests(repo, session):
    """SIGTERM while three large requests run: all three still succeed. The grace is long
    (300 s): a busy machine (the suite runs on every core) must not turn this into a test of
    speed; the grace running out is the next test's."""
    s = Server(repo / "bundles", max_body=64 << 20, max_batch_rows=65536, grace=300)
    x = RNG.normal(size=(65536, 8, 8, 1)).astype("float32")
    results, signalled, finished = _sigterm_during_three_large_requests(s, x)
    assert s.wait() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
    log = s.log()
    assert [status for status, _, _ in results] == [200] * 3, log
    assert min(finished) > signalled, "the requests were not in flight when SIGTERM came"
    expected = session.run(None, {"input": x[:100]})[0]
    assert all(np.allclose(out[:100], expected, atol=1e-5) for _, _, out in results)
    assert "SIGTERM: shutting down; in-flight requests get up to 300 s" in log, log
    assert log.rstrip().endswith("stopped"), log


def test_a_request_still_running_when_the_grace_runs_out_gets_503_not_500(repo):
    """With 0.2 s of grace, three ~1 s requests cannot all finish: uvicorn cancels the rest,
    and each of those is answered 503 with the reason and a retry-after, never a bare 500."""
    s = Server(repo / "bundles", max_body=64 << 20, max_batch_rows=65536, grace=0.2)
    x = RNG.normal(size=(65536, 8, 8, 1)).astype("float32")
    results, _, _ = _sigterm_during_three_large_requests(s, x)
    assert s.wait() in (0, -signal.SIGTERM)
    log = s.log()
    statuses = [status for status, _, _ in results]
    assert 503 in statuses and set(statuses) <= {200, 503}, (statuses, log)
    for status, headers, data in results:
        if status == 503:
            assert headers["retry-after"] == "1"
            error = json.loads(data)["error"]
            assert "shut down before this request finished" in error and "0.2 s" in error, error
            assert "--grace" in error, error
    assert "cancelled at shutdown, 0.2 s grace ran out" in log, log
    assert "Exception in ASGI application" not in log, log
    assert log.rstrip().endswith("stopped"), log


def test_bearer_token(repo):
    s = Server(repo / "bundles", "--token", "s3cret")
    try:
        x = RNG.normal(size=(1, 8, 8, 1)).astype("float32")
        assert post(f"{s.url}/v2/models/digits/infer", infer_json(x))[0] == 401
        assert post(f"{s.url}/v2/models/digits/infer", infer_json(x),
                    {"authorization": "Bearer wrong"})[0] == 401
        assert post(f"{s.url}/v2/models/digits/infer", infer_json(x),
                    {"authorization": "Bearer s3cret"})[0] == 200
        assert get(f"{s.url}/v2/health/live")[0] == 200
    finally:
        s.stop()


def test_public_bind_needs_a_token(repo):
    import subprocess
    import sys

    from tests.conftest import ROOT
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve", str(repo / "bundles"),
                           "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--token" in proc.stderr


@pytest.mark.parametrize("flag", ["--port", "--grpc-port"])
def test_a_taken_port_is_named_before_the_models_load(repo, flag):
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = ["--grpc-port", "0"] if flag == "--port" else ["--port", "0"]
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve",
                               str(repo / "bundles"), flag, str(port), *other],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {flag} {port}: cannot listen on 127.0.0.1:{port} (Address already in use)" \
        in proc.stderr and "listening on" not in proc.stderr


def test_triton_repository_is_served_as_is(repo, server, session):
    """Its model is pixels.onnx: it takes `pixels` only, over /infer and through /classify."""
    import tritonclient.http as httpclient
    s = Server(repo / "triton")
    try:
        meta = json.loads(get(f"{s.url}/v2/models/mnist1d")[2])
        assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 40, 1]}]
        pixels = (RNG.random((3, 8, 8, 1)) * 255).astype("uint8")
        client = httpclient.InferenceServerClient(url=s.url.removeprefix("http://"))
        inp = httpclient.InferInput("pixels", [3, 8, 8, 1], "UINT8")
        inp.set_data_from_numpy(pixels)
        got = client.infer("digits", [inp]).as_numpy("probabilities")
        client.close()
        prep = json.loads((repo / "bundles" / "digits" / "preprocess.json").read_text())
        x = ((pixels / 255 * prep["raw_max"] / prep["scale"] - prep["mean"][0]) / prep["std"][0])
        np.testing.assert_allclose(got, session.run(None, {"input": x.astype("float32")})[0],
                                   atol=1e-5)
        status, _, body = post(f"{s.url}/v2/models/digits/infer", infer_json(x))
        assert status == 400 and "missing input 'pixels'" in json.loads(body)["error"]
        image = png_bytes((RNG.random((16, 16)) * 255).astype("uint8"))
        answers = [json.loads(post(f"{url}/v2/models/digits/classify?top_k=10", image,
                                   {"content-type": "image/png"})[2])["top_k"]
                   for url in (s.url, server.url)]
        assert [t["index"] for t in answers[0]] == [t["index"] for t in answers[1]]
        np.testing.assert_allclose([t["probability"] for t in answers[0]],
                                   [t["probability"] for t in answers[1]], atol=1e-5)
    finally:
        s.stop()


def test_predict_locally_and_through_the_server(server, repo, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT
    image = tmp_path / "d.png"
    image.write_bytes(png_bytes((RNG.random((8, 8)) * 255).astype("uint8")))
    local = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict",
                            str(repo / "bundles" / "digits"), str(image)],
                           capture_output=True, text=True)
    remote = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict", "--url", server.url,
                             "--model", "digits", str(image)], capture_output=True, text=True)
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    assert local.stdout.split(": ", 1)[1] == remote.stdout.split(": ", 1)[1]
