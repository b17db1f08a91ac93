"""Fault and abuse cases: oversized, malformed, slow and hostile requests get a 4xx, never a 500,
a hang or a traceback, and the server keeps answering everyone else."""
import asyncio
import http.client
import io
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.serve.conftest import Server, infer_json, post

RNG = np.random.default_rng(7)
TOKEN = "sécret-ключ"  # non-ASCII on purpose


def get(url, headers=None, method="GET"):
    return post(url, None, headers, method=method)


def error_of(body: bytes) -> str:
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc["error"]


def request_doc(x, **spec):
    """An infer request body for tensor ``x`` with input fields overridden by ``spec``."""
    base = {"name": "input", "datatype": "FP32", "shape": list(x.shape),
            "data": x.reshape(-1).tolist()}
    return {"inputs": [{**base, **spec}]}


def png_bytes(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit grey pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def strict(repo):
    """A server with second-scale timeouts, a cap of 6 connections and a non-ASCII token."""
    s = Server(repo / "bundles", timeout_keep_alive=1, timeout_header=1, timeout_body=1,
               max_connections=6, token=TOKEN)
    yield s
    s.stop()


# 1. rows per request ---------------------------------------------------------------------------

def test_rows_per_request_are_capped_before_decoding(server):
    url = f"{server.url}/v2/models/digits/infer"
    x = RNG.normal(size=(65, 8, 8, 1)).astype("float32")
    status, _, body = post(url, infer_json(x))
    assert status == 413 and "at most 64" in error_of(body) and "--max-batch-rows" in error_of(body)
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    status, _, body = post(url, head + raw, {"Inference-Header-Content-Length": str(len(head))})
    assert status == 413 and "--max-batch-rows" in error_of(body)
    # a declared batch far beyond the data (and beyond int64 once multiplied) is refused on sight
    for rows in (2 ** 40, 2 ** 58 + 1):
        doc = request_doc(x[:1], shape=[rows, 8, 8, 1])
        status, _, body = post(url, json.dumps(doc).encode())
        assert status == 413 and f"{rows} rows" in error_of(body)
    assert post(url, infer_json(x[:64]))[0] == 200  # the cap itself is allowed


def test_protocol_checks_rows_and_list_length_before_numpy():
    from cnnbp.serve.protocol import BadRequest, TensorSpec, parse_infer
    inputs = (TensorSpec("input", "FP32", (2,)),)
    big = json.dumps(request_doc(np.zeros((1, 2), "float32"), shape=[100, 2])).encode()
    with pytest.raises(BadRequest) as info:
        parse_infer(big, None, inputs, max_rows=64)
    assert info.value.status == 413
    # a small shape cannot carry a huge list into np.asarray
    long = json.dumps(request_doc(np.zeros((1, 2), "float32"), data=[0.0] * 1000)).encode()
    with pytest.raises(BadRequest, match="list of 2 numbers"):
        parse_infer(long, None, inputs, max_rows=64)


# 2. images -------------------------------------------------------------------------------------

@pytest.mark.parametrize("width,height", [(13000, 13000), (20000, 20000)])
def test_images_over_the_pixel_limit_are_refused_from_the_header(server, width, height):
    started = time.perf_counter()
    status, _, body = post(f"{server.url}/v2/models/digits/classify", png_claiming(width, height),
                           {"content-type": "image/png"})
    assert status == 413, body
    assert "25,000,000 pixels" in error_of(body) and "--max-image-pixels" in error_of(body)
    assert time.perf_counter() - started < 1.0


def test_image_decoding_does_not_block_the_event_loop(server):
    pixels = np.zeros((4900, 4900), "uint8")
    pixels[::7, ::3] = 255  # 24 megapixels in a 28 KB PNG: a quarter second to decode
    image = png_bytes(pixels)
    started = time.perf_counter()
    Image.open(io.BytesIO(image)).convert("L").resize((8, 8))
    one_decode = time.perf_counter() - started
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, f"{server.url}/v2/models/digits/classify", image,
                               {"content-type": "image/png"}) for _ in range(4)]
        worst = 0.0
        while not all(f.done() for f in futures):
            started = time.perf_counter()
            assert get(f"{server.url}/v2/health/live")[0] == 200
            worst = max(worst, time.perf_counter() - started)
            wait(futures, timeout=0.01)  # the next probe, or at once when all decodes are done
        assert [f.result()[0] for f in futures] == [200] * 4
    assert worst < max(0.1, one_decode / 2), (worst, one_decode)


def test_jpeg_decodes_in_draft_mode(server, session):
    """A large JPEG is decoded at 1/8 scale (PIL draft), then resized as before."""
    blocks = (np.random.default_rng(0).random((160, 200, 3)) * 255).astype("uint8")
    buf = io.BytesIO()  # 1600x1280 in 170 kB, under the fixture's 300 kB body limit
    Image.fromarray(blocks).resize((1600, 1280), Image.NEAREST).save(buf, format="JPEG", quality=50)
    status, _, body = post(f"{server.url}/v2/models/digits/classify?top_k=10", buf.getvalue(),
                           {"content-type": "image/jpeg"})
    assert status == 200
    got = {t["index"]: t["probability"] for t in json.loads(body)["top_k"]}

    def expected(draft: bool) -> np.ndarray:
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            if draft:
                im.draft("L", (8, 8))
            # bilinear, as training's image loader resizes (PIL's default would be bicubic)
            x = np.asarray(im.convert("L").resize((8, 8), Image.Resampling.BILINEAR),
                           "float32")[None, :, :, None] / 255
        return session.run(None, {"input": x})[0][0]

    draft, full = expected(True), expected(False)
    assert np.abs(draft - full).max() > 2e-5  # the two paths really differ for this image
    np.testing.assert_allclose([got[i] for i in range(10)], draft, atol=1e-6)


def test_broken_and_foreign_images_are_400(server):
    good = png_bytes((RNG.random((16, 16)) * 255).astype("uint8"))
    bad_crc = bytearray(good)
    bad_crc[29] ^= 0xFF  # the IHDR checksum
    assert good[37:41] == b"IDAT"  # an IDAT 64 bytes shorter than its data: PIL's load() then
    idat = struct.unpack(">I", good[33:37])[0]  # reads a chunk type from the middle of the data
    bad_length = good[:33] + struct.pack(">I", idat - 64) + good[37:]  # (SyntaxError)
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    for body in (bad_length, bytes(bad_crc), good[:60], good[:8], gif.getvalue(), b""):
        status, _, resp = post(f"{server.url}/v2/models/digits/classify", body,
                               {"content-type": "image/png"})
        assert status == 400 and "cannot decode the image" in error_of(resp), body[:40]
        assert "0x" not in error_of(resp)  # no object addresses from PIL's messages


# 3. connections ---------------------------------------------------------------------------------

def test_an_idle_connection_is_closed(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as s:
        started = time.perf_counter()
        assert s.recv(100) == b""
        assert time.perf_counter() - started < 3


def read_until_closed(s: socket.socket, seconds: float) -> bytes:
    s.settimeout(seconds)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_slow_request_head_times_out(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as s:
        started = time.perf_counter()
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for _ in range(40):  # a header line every 0.1 s: trickling does not extend the deadline
            s.settimeout(0.1)
            try:
                answer = s.recv(4096)
                break
            except socket.timeout:
                pass
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.perf_counter() - started
        answer += read_until_closed(s, 2)
    assert 0.8 < elapsed < 2.5, elapsed
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:80]


def test_a_slow_request_body_times_out(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as s:
        started = time.perf_counter()
        s.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n{\"inputs\"")
        answer = read_until_closed(s, 4)
        elapsed = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 408") and b"body" in answer, answer[:120]
    assert elapsed < 2.5


def test_a_huge_header_is_refused_while_others_are_served(server):
    """8 MB of header: cut off at the head limit; a concurrent client is answered in < 1 s."""
    outcome = {}

    def send_big():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            try:
                s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20)
                          + b"\r\n\r\n")
                outcome["answer"] = read_until_closed(s, 5)
            except (BrokenPipeError, ConnectionResetError) as exc:
                outcome["answer"] = type(exc).__name__

    sender = threading.Thread(target=send_big)
    sender.start()
    worst = 0.0
    while sender.is_alive():
        started = time.perf_counter()
        assert get(f"{server.url}/v2/health/live")[0] == 200
        worst = max(worst, time.perf_counter() - started)
    sender.join()
    answer = outcome["answer"]
    assert answer in ("BrokenPipeError", "ConnectionResetError", b"") \
        or answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert worst < 1.0


def test_connections_over_the_cap_get_503_at_once(strict):
    idle = [http.client.HTTPConnection("127.0.0.1", strict.port, timeout=5) for _ in range(6)]
    try:
        for conn in idle:  # an answer on each shows the server holds it (kept alive for 1 s)
            conn.request("GET", "/v2/health/live")
            assert conn.getresponse().read() == b'{"live":true}'
        status, _, body = get(f"{strict.url}/v2/health/live")
        assert status == 503 and "6 open connections" in error_of(body)
    finally:
        for conn in idle:  # the server's close (recv gives b"") shows it has let the socket go
            conn.sock.shutdown(socket.SHUT_WR)
            assert conn.sock.recv(1024) == b""
            conn.close()
    assert get(f"{strict.url}/v2/health/live")[0] == 200


# 4. malformed requests: 400, and a 500 tells nothing ---------------------------------------------

X1 = np.zeros((1, 8, 8, 1), "float32")
RAW = X1.tobytes()


def binary_body(size, **doc):
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1],
                                   "parameters": {"binary_data_size": size}}], **doc}).encode()
    return head + RAW, {"Inference-Header-Content-Length": str(len(head))}


MALFORMED = {
    "parameters is a number": ({**request_doc(X1), "parameters": 5}, "parameters"),
    "outputs is a string": ({**request_doc(X1), "outputs": "x"}, "outputs"),
    "output parameters is a number": ({**request_doc(X1), "outputs": [{"parameters": 3}]},
                                      "outputs[0].parameters"),
    "an output is a number": ({**request_doc(X1), "outputs": [5]}, "outputs[0]"),
    "input parameters is a list": (request_doc(X1, parameters=[1]), "parameters"),
    "shape with true as batch": (request_doc(X1, shape=[True, 8, 8, 1]), "shape"),
    "shape with true as a dimension": (request_doc(X1, shape=[1, 8, 8, True]), "shape"),
    "data is a string": (request_doc(X1, data="0" * 64), "data"),
    "binary_data_size 256.5": (binary_body(256.5), "binary_data_size"),
    "binary_data_size -1": (binary_body(-1), "binary_data_size"),
    "binary_data_size a string": (binary_body("256"), "binary_data_size"),
    "binary_data_size true": (binary_body(True), "binary_data_size"),
    "duplicate inputs": ({"inputs": request_doc(X1)["inputs"] * 2}, "appears 2 times"),
    "an unknown extra input": (
        {"inputs": request_doc(X1)["inputs"] + request_doc(X1, name="extra")["inputs"]},
        "unknown inputs ['extra']"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_infer_requests_are_400(server, case):
    doc, message = MALFORMED[case]
    body, headers = doc if isinstance(doc, tuple) else (json.dumps(doc).encode(), {})
    status, _, resp = post(f"{server.url}/v2/models/digits/infer", body, headers)
    assert status == 400 and message in error_of(resp), (status, resp)


def test_malformed_classify_requests_are_400(server):
    cases = [
        ("/v2/models/digits/classify?top_k=%FF%FE", png_bytes(np.zeros((8, 8), "uint8")), "top_k"),
        ("/v2/models/mnist1d/classify", json.dumps({"signal": {"a": 1}}).encode(), "signal"),
        ("/v2/models/mnist1d/classify", json.dumps({"signal": [0] * 5_000}).encode(), "signal"),
        ("/v2/models/digits/classify", json.dumps({"signal": [0.0] * 40}).encode(), "takes images"),
    ]
    for path, body, message in cases:
        kind = "image/png" if body.startswith(b"\x89PNG") else "application/json"
        status, _, resp = post(server.url + path, body, {"content-type": kind})
        assert status == 400 and message in error_of(resp), (path, resp)


def test_broken_http_gets_a_json_error(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /v2?top_k=\xff HTTP/1.1\r\nHost: x\r\n\r\n")  # a raw byte in the URL
        answer = read_until_closed(s, 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and "HTTP/1.1" in error_of(body)


def test_an_internal_error_is_logged_and_not_leaked(caplog, monkeypatch):
    """A bug answers 500 {"error": "internal error"}; the traceback goes to the log only."""
    import warnings
    from types import SimpleNamespace

    from cnnbp.serve.app import App
    from cnnbp.serve.config import ServeConfig
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # App sets it

    def broken(x):
        raise RuntimeError("secret detail /srv/models/private")

    from cnnbp.serve.protocol import TensorSpec
    model = SimpleNamespace(name="m", input_shape=(2,), labels=["a", "b"], call_seconds=0.0,
                            run=broken, batcher=None, inputs=(TensorSpec("input", "FP32", (2,)),),
                            model_input=lambda name, x: x)
    with warnings.catch_warnings():
        app = App({"m": model}, ServeConfig("unused", max_delay_ms=0))
    sent = []

    async def receive():
        return {"type": "http.request", "body": json.dumps(request_doc(np.zeros((1, 2)))).encode(),
                "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": [],
             "query_string": b""}
    with caplog.at_level("ERROR", logger="cnnbp.serve"):
        asyncio.run(app(scope, receive, send))
    app.executor.shutdown()
    app.decoder.shutdown()
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == {"error": "internal error"}
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


# 5. non-finite outputs ---------------------------------------------------------------------------

def test_inputs_that_overflow_float32_arithmetic_are_422(server):
    from tests.serve.test_triton_parity import counts

    def stats():
        return counts(json.loads(get(f"{server.url}/v2/models/digits/stats")[2])
                      ["model_stats"][0])
    before = stats()
    x = np.full((1, 8, 8, 1), 3e38, "float32")  # finite inputs; the first layer overflows
    status, _, body = post(f"{server.url}/v2/models/digits/infer", infer_json(x))
    assert status == 422 and "overflow" in error_of(body)
    # a failed request counts every stage it went through: here all four, as the model ran
    change = {k: v - before[k] for k, v in stats().items()}
    assert {k: change[k] for k in ("success", "fail", "queue", "compute_input", "compute_infer",
                                   "compute_output", "inference")} == \
        {"success": 0, "fail": 1, "queue": 1, "compute_input": 1, "compute_infer": 1,
         "compute_output": 1, "inference": 1}
    status, _, body = post(f"{server.url}/v2/models/mnist1d/classify",
                           json.dumps({"signal": [3e38] * 40}).encode(),
                           {"content-type": "application/json"})
    assert status == 422 and "overflow" in error_of(body)


# 7. the bearer token is compared as UTF-8 bytes ------------------------------------------------

def test_a_non_ascii_token_works_for_utf8_clients(strict):
    x = RNG.normal(size=(1, 8, 8, 1)).astype("float32")

    def call(auth: bytes):
        conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10)
        conn.request("POST", "/v2/models/digits/infer", infer_json(x), {"Authorization": auth})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status

    assert call(b"Bearer " + TOKEN.encode("utf-8")) == 200
    assert call(b"Bearer " + "sécret-".encode("latin-1") + "ключ".encode("utf-8")) == 401
    assert call(b"Bearer wrong") == 401


def test_a_401_names_the_scheme_and_the_scheme_is_case_insensitive(strict):
    """RFC 6750 section 3 (WWW-Authenticate: Bearer) and RFC 7235 section 2.1 (the scheme is
    case-insensitive); the token itself stays exact. (gRPC: test_grpc.py's token test.)"""
    url = f"{strict.url}/v2/models/digits"
    status, headers, _ = get(url)
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    status, headers, _ = get(url, {"Authorization": b"Bearer wrong"})
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    token = TOKEN.encode("utf-8")
    for scheme in (b"bearer", b"BEARER", b"bEaReR"):
        assert get(url, {"Authorization": scheme + b" " + token})[0] == 200, scheme
    assert get(url, {"Authorization": b"Bearer " + token.upper()})[0] == 401
    # optional whitespace around the token (RFC 9110 OWS) is no part of it
    assert get(url, {"Authorization": b"Bearer  " + token + b" \t"})[0] == 200
    assert get(url, {"Authorization": b"Basic " + token})[0] == 401


# 8. the port -------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_refused(repo, port):
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve",
                           str(repo / "bundles" / "digits"), "--port", port],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--port" in proc.stderr and "0 to 65535" in proc.stderr
    assert "Traceback" not in proc.stderr


# 9-10. methods and the routes in /metrics --------------------------------------------------------

def test_wrong_methods_are_405_with_allow(server):
    cases = [("TRACE", "/v2", "GET"), ("POST", "/metrics", "GET"),
             ("PUT", "/v2/health/live", "GET"), ("POST", "/v2/health/ready", "GET"),
             ("DELETE", "/v2/models/digits", "GET"), ("POST", "/v2/models/digits/ready", "GET"),
             ("GET", "/v2/models/digits/infer", "POST"),
             ("PUT", "/v2/models/digits/classify", "POST")]
    for method, path, allowed in cases:
        status, headers, body = get(server.url + path, method=method)
        assert status == 405, (method, path)
        allowed = "GET, HEAD" if allowed == "GET" else allowed
        assert headers.get("allow") == allowed and allowed in error_of(body)


def metric(text: str, route: str, status, protocol: str = "http") -> int:
    prefix = f'cnnbp_requests_total{{protocol="{protocol}",route="{route}",status="{status}"}} '
    return sum(int(float(line[len(prefix):])) for line in text.splitlines()
               if line.startswith(prefix))


def test_errors_are_counted_under_their_route(server):
    before = get(f"{server.url}/metrics")[2].decode()
    get(f"{server.url}/v2", method="TRACE")
    post(f"{server.url}/v2/models/nope/infer", b"{}")
    post(f"{server.url}/v2/models/digits/infer", b"{")
    post(f"{server.url}/v2/models/digits/classify", b"not an image", {"content-type": "image/png"})
    get(f"{server.url}/v2/models/nope")
    get(f"{server.url}/v2/health/live", method="POST")
    get(f"{server.url}/nowhere")
    after = get(f"{server.url}/metrics")[2].decode()
    for route, status in [("server", 405), ("infer", 404), ("infer", 400), ("classify", 400),
                          ("metadata", 404), ("health", 405), ("other", 404)]:
        assert metric(after, route, status) == metric(before, route, status) + 1, (route, status)


# 11. cnnbp predict on bad files ------------------------------------------------------------------

@pytest.fixture
def bad_files(tmp_path):
    broken = bytearray(png_bytes(np.zeros((8, 8), "uint8")))
    broken[29] ^= 0xFF
    files = {"text.png": b"hello", "broken.png": bytes(broken), "bad.npy": b"not numpy",
             "bad.json": b"{not json", "notes.txt": b"\xff\xfe binary"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("name", ["text.png", "broken.png", "bad.npy", "bad.json", "notes.txt"])
def test_predict_names_a_bad_file(repo, bad_files, name):
    from cnnbp.serve.client import predict_local
    from cnnbp.serve.protocol import BadRequest
    bundle = repo / "bundles" / ("digits" if name.endswith(".png") else "mnist1d")
    with pytest.raises(BadRequest) as info:
        predict_local(str(bundle), [str(bad_files / name)])
    assert str(bad_files / name) in str(info.value)


def test_predict_cli_reports_a_bad_file_without_a_traceback(repo, bad_files, server):
    for extra in ([str(repo / "bundles" / "digits")], ["--url", server.url, "--model", "digits"]):
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict", *extra,
                               str(bad_files / "broken.png")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and "broken.png" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
