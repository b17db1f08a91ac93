"""The server's own cost per request: the ASGI app called in-process, no sockets or uvicorn.

A stand-in model (fixed scores, run inline) isolates routing, auth, body reading, request
validation, batching bookkeeping, metrics and the response. Works with the ``App`` before and
after it took a ``ServeConfig`` (issue 27), so two builds can be compared: run it once with
each on PYTHONPATH. Prints the best of 5 runs of 4,000 calls per kind, in microseconds.
Usage: PYTHONPATH=ROOT python bench/asgi_cost.py   (ROOT: a folder holding ``cnnbp``)
"""
import asyncio
import json
import logging
import time
from types import SimpleNamespace

import numpy as np

from cnnbp.serve.app import App
from cnnbp.serve.protocol import TensorSpec


def make_app():
    probs = np.full((1, 10), 0.1, "float32")
    model = SimpleNamespace(
        name="m", input_shape=(8, 8, 1), labels=list("abcdefghij"), call_seconds=0.0,
        run=lambda x: probs, batcher=None, inputs=(TensorSpec("input", "FP32", (8, 8, 1)),),
        model_input=lambda name, x: x, metadata=lambda: {"name": "m"})
    try:
        from cnnbp.serve.config import ServeConfig
        app, build = App({"m": model}, ServeConfig("-", max_delay_ms=0)), "ServeConfig"
    except ImportError:  # the App before issue 27
        app, build = App({"m": model}, max_delay_ms=0), "keywords"
    model.batcher.inline = True
    return app, build


def cases():
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    spec = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1]}
    doc = json.dumps({"inputs": [{**spec, "data": x.reshape(-1).tolist()}]}).encode()
    raw = x.tobytes()
    head = json.dumps({"inputs": [{**spec, "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"binary_data": True}}]}).encode()
    length = lambda body: [(b"content-length", str(len(body)).encode())]
    return {"health": ("GET", "/v2/health/live", b"", []),
            "metadata": ("GET", "/v2/models/m", b"", []),
            "404": ("GET", "/v2/nope", b"", []),
            "infer json": ("POST", "/v2/models/m/infer", doc, length(doc)),
            "infer binary": ("POST", "/v2/models/m/infer", head + raw, length(head + raw) + [
                (b"inference-header-content-length", str(len(head)).encode())])}


async def cost(app, method, path, body, headers, n=4000, runs=5) -> float:
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass
    scope = {"type": "http", "method": method, "path": path, "headers": headers,
             "query_string": b""}
    for _ in range(n // 4):  # warm-up
        await app(dict(scope), receive, send)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main() -> None:
    logging.getLogger("cnnbp.serve.access").setLevel(logging.WARNING)
    app, build = make_app()
    for kind, case in cases().items():
        print(f"{build:11} {kind:13} {asyncio.run(cost(app, *case)):7.1f} us")
    for pool in (app.executor, app.decoder, app.parser):
        pool.shutdown()


if __name__ == "__main__":
    main()
