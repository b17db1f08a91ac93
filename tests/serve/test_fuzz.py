"""Fuzzing a running server: mutated infer and classify requests get a 200 or a 4xx with a JSON
error, never a 5xx, and the server keeps serving. Bounded: ~800 requests, a few seconds."""
import copy
import http.client
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
# values that broke the server once, or sit at a boundary of what it accepts
NASTY = st.sampled_from([True, False, None, 0, -1, 1, 2 ** 63, 2 ** 58 + 1, 256.5, "256", "", [],
                         {}, [[]], [None], 3e38, -3e38, 1e-45, "input", "FP32", [1, 8, 8, 1],
                         [65, 8, 8, 1], [True, 8, 8, 1], {"binary_data_size": 5}]
                        ).map(copy.deepcopy) | JSON  # a copy: mutations must not touch the list
X = np.random.default_rng(3).normal(size=(1, 8, 8, 1)).astype("float32")


def base_doc(binary: bool) -> dict:
    spec = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1]}
    if binary:
        spec["parameters"] = {"binary_data_size": 256}
    else:
        spec["data"] = X.reshape(-1).tolist()
    return {"id": "f", "inputs": [spec], "parameters": {"binary_data_output": binary},
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": binary}}]}


def paths(tree, prefix=()):
    """Every place in a JSON tree (the first 3 items of a list), the root included."""
    yield prefix
    items = tree.items() if isinstance(tree, dict) else \
        enumerate(tree[:3]) if isinstance(tree, list) else ()
    for key, value in items:
        yield from paths(value, prefix + (key,))


@st.composite
def mutated_doc(draw):
    """A valid request with one to three structural mutations, so most get past early checks."""
    binary = draw(st.booleans())
    doc = base_doc(binary)
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(doc))[1:]
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "add"]))
        if op == "replace":
            parent[path[-1]] = draw(NASTY)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(json.loads(json.dumps(parent[path[-1]])))
        elif isinstance(parent, dict):
            key = draw(st.sampled_from(["name", "data", "parameters", "extra", "shape"]))
            parent[key] = draw(NASTY)
    return binary, doc


@pytest.fixture(scope="module")
def client(server):
    """send(method, path, body, headers) -> (status, response, body) on a reused connection."""
    conn = [None]

    def send(method, path, body, headers):
        for attempt in range(2):  # the server may close a connection after an early answer
            if conn[0] is None:
                conn[0] = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                conn[0].request(method, path, body, headers)
                resp = conn[0].getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    conn[0].close()
                    conn[0] = None
                return resp.status, resp, data
            except (ConnectionError, http.client.HTTPException):
                conn[0].close()
                conn[0] = None
                if attempt:
                    raise
    yield send
    if conn[0] is not None:
        conn[0].close()


def check(status, resp, data):
    assert status == 200 or 400 <= status < 500, (status, data[:300])
    if status != 200:
        doc = json.loads(data)
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"]
    elif resp.getheader("content-type") == "application/json":
        json.loads(data)


def mutate(data: bytes, edits) -> bytes:
    """Apply (position, byte) overwrites, then a truncation, to ``data``."""
    out = bytearray(data)
    for pos, byte in edits[0]:
        out[pos % len(out)] = byte
    return bytes(out[:edits[1]]) if edits[1] is not None else bytes(out)


def edits(length, min_size=0):
    """Byte overwrites, half of them in bytes 8-63 (past a PNG signature: its header chunks)."""
    where = st.integers(8, 63) | st.integers(0, length - 1)
    byte = st.sampled_from([0, 255]) | st.integers(0, 255)
    return st.tuples(st.lists(st.tuples(where, byte), min_size=min_size,
                              max_size=8),
                     st.none() | st.integers(0, length))


@settings(FUZZ, max_examples=200)
@given(case=mutated_doc(), damage=st.sampled_from(["none"] * 6 + ["flips", "length", "tail"]),
       flips=edits(600), length=st.sampled_from(["-1", "0", "x", "99999", "+1"]),
       tail=st.sampled_from([0, 255, 257, 512]))
def test_fuzz_infer(client, case, damage, flips, length, tail):
    """Mostly structural damage to a valid request; at times damaged bytes or framing too."""
    binary, doc = case
    head = json.dumps(doc).encode()
    raw = X.tobytes() * 2
    body = head + raw[:tail if damage == "tail" else 256] if binary else head
    headers = {"content-type": "application/json"}
    if binary:
        headers["Inference-Header-Content-Length"] = str(len(head))
    if damage == "length":
        headers["Inference-Header-Content-Length"] = \
            str(len(head) + 1) if length == "+1" else length
    elif damage == "flips":
        body = mutate(body, flips)
    check(*client("POST", "/v2/models/digits/infer", body, headers))


def image(fmt: str) -> bytes:
    buf = io.BytesIO()
    pixels = (np.random.default_rng(5).random((16, 16)) * 255).astype("uint8")
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


PNG, JPEG = image("PNG"), image("JPEG")


@settings(FUZZ, max_examples=150)
@given(which=st.sampled_from([PNG, JPEG]), flips=edits(2000, min_size=1),
       kind=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", ""]),
       top_k=st.sampled_from([None] * 6 + ["1", "10", "-5", "x", "9" * 30, "%FF", "1e3", ""]))
def test_fuzz_classify_images(client, which, flips, kind, top_k):
    path = "/v2/models/digits/classify" + ("" if top_k is None else f"?top_k={top_k}")
    headers = {"content-type": kind} if kind else {}
    check(*client("POST", path, mutate(which, flips), headers))


def test_every_single_byte_damage_to_the_image_headers(client):
    """A corpus: bytes 8-63 of the PNG (its IHDR and the first chunk's length) and 2-63 of the
    JPEG, each set to 0, 255 and flipped in its lowest bit."""
    for data, start in ((PNG, 8), (JPEG, 2)):
        for pos in range(start, 64):
            for byte in (0, 255, data[pos] ^ 1):
                check(*client("POST", "/v2/models/digits/classify",
                              data[:pos] + bytes([byte]) + data[pos + 1:], {}))


@FUZZ
@given(doc=st.one_of(st.fixed_dictionaries({"signal": st.one_of(
           st.just(np.zeros(40).tolist()), NASTY,
           st.lists(st.floats(width=32) | st.integers(), min_size=39, max_size=41),
           st.lists(st.lists(st.floats(width=32) | NASTY, max_size=2), min_size=40, max_size=40))}),
       NASTY), model=st.sampled_from(["mnist1d", "mnist1d", "digits"]))
def test_fuzz_classify_signals(client, doc, model):
    body = json.dumps(doc).encode()  # NaN and Infinity included: extensions Python writes
    check(*client("POST", f"/v2/models/{model}/classify", body,
                  {"content-type": "application/json"}))


def test_the_server_still_serves_after_the_fuzzing(client, server):
    status, _, _ = client("GET", "/v2/health/ready", None, {})
    assert status == 200 and server.proc.poll() is None
