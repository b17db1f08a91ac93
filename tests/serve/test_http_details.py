"""What a stock client or proxy expects of the HTTP side: HEAD, Triton's class_count, a JSON
error for multipart uploads, an access log, refusals in /metrics, and the page at ``/``."""
import json
import re
import socket
import time

import numpy as np
import pytest

from tests.serve.conftest import post
from tests.serve.test_abuse import metric
from tests.serve.test_server import binary_request, get, png_bytes

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2", "/v2/models/digits", "/metrics", "/"])
def test_head_answers_the_get_headers_without_a_body(server, path):
    status, headers, body = post(server.url + path, None, method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == len(get(server.url + path)[2]) or path == "/metrics"


def test_head_on_a_post_route_is_405(server):
    status, headers, _ = post(f"{server.url}/v2/models/digits/infer", None, method="HEAD")
    assert status == 405 and headers["allow"] == "POST"


@pytest.mark.parametrize("binary", [True, False])
def test_class_count_with_tritons_http_client(server, session, binary):
    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    x = RNG.normal(size=(3, 8, 8, 1)).astype("float32")
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=4)
    top = client.infer("digits", [inp], outputs=[out]).as_numpy("probabilities")
    assert top.shape == (3, 4)
    expected = session.run(None, {"input": x})[0]
    for row, probs in zip(top, expected):
        items = [(v.decode() if isinstance(v, bytes) else v).split(":", 2) for v in row]
        assert [int(i) for _, i, _ in items] == list(np.argsort(-probs)[:4])
        assert all(abs(float(s) - probs[int(i)]) < 1e-5 for s, i, _ in items)


@pytest.mark.parametrize("value,message", [
    (-1, "class_count must be a whole number from 0 to 10"), (11, "from 0 to 10"),
    (10 ** 12, "from 0 to 10"), ("3", "class_count must be a whole number"),
])
def test_bad_class_count_is_400(server, value, message):
    x = np.zeros((1, 8, 8, 1), "float32")
    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1],
                       "data": x.reshape(-1).tolist()}],
           "outputs": [{"name": "probabilities", "parameters": {"class_count": value}}]}
    status, _, body = post(f"{server.url}/v2/models/digits/infer", json.dumps(doc).encode())
    assert status == 400 and message in json.loads(body)["error"]


def test_unknown_output_is_400(server):
    body, headers = binary_request(np.zeros((1, 8, 8, 1), "float32"))
    doc = body.replace(b'"probabilities"', b'"logits"       ')
    status, _, resp = post(f"{server.url}/v2/models/digits/infer", doc, headers)
    assert status == 400
    assert "unknown output 'logits'; this model has one output, 'probabilities'" in \
        json.loads(resp)["error"]


def test_multipart_upload_to_classify_says_how_to_send_the_image(server):
    boundary = "xyz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\""
            f"\r\nContent-Type: image/png\r\n\r\n").encode() + \
        png_bytes(np.zeros((8, 8), "uint8")) + f"\r\n--{boundary}--\r\n".encode()
    status, headers, resp = post(f"{server.url}/v2/models/digits/classify", body,
                                 {"content-type": f"multipart/form-data; boundary={boundary}"})
    assert status == 415 and headers["content-type"] == "application/json"
    error = json.loads(resp)["error"]
    assert "Content-Type image/png" in error and "--data-binary" in error


def test_access_log_line_per_request(server):
    post(f"{server.url}/v2/models/nope/infer", b"{}")
    pattern = re.compile(r'cnnbp\.serve\.access: 127\.0\.0\.1:\d+ "POST /v2/models/nope/infer" '
                         r'404 \d+ [\d.]+ms')
    assert server.wait_for_log(pattern, 5), server.log()[-2000:]


def test_connection_refusals_are_counted(server):
    before = get(f"{server.url}/metrics")[2].decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /v2/models/digits HTTP/1.1\r\nHost: x\r\n")
        # a slow client is the behaviour under test: the rest of the head must come in a later
        # read (the read in which a head begins is not measured), so it waits a moment
        time.sleep(0.1)
        s.sendall(b"X-Big: " + b"a" * (80 << 10))
        assert b" 431 " in s.recv(1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert b" 400 " in s.recv(1024)
    after = get(f"{server.url}/metrics")[2].decode()
    assert metric(after, "metadata", 431) == metric(before, "metadata", 431) + 1
    assert metric(after, "connection", 400) == metric(before, "connection", 400) + 1


def test_page_is_self_contained_and_lists_models(server):
    status, headers, body = get(f"{server.url}/")
    html = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    # no external scripts, styles, fonts or images: nothing loads from another origin
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "@import" not in html and "url(" not in html
    assert "/v2/repository/index" in html and "/classify" in html
    status, _, index = post(f"{server.url}/v2/repository/index", b"")
    models = {m["name"]: m for m in json.loads(index)}
    assert status == 200 and set(models) == {"digits", "mnist1d"}
    assert models["digits"]["domain"] == "image" and models["mnist1d"]["domain"] == "signal"
    assert models["mnist1d"]["input_shape"] == [40, 1] and models["digits"]["classes"] == 10
