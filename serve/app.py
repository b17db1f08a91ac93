"""The ASGI application: Open Inference Protocol routes, a classify shortcut, metrics, auth."""
from __future__ import annotations

import hmac
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import numpy as np
import orjson

from .batcher import INLINE_SECONDS, Batcher
from .metrics import Metrics
from .protocol import HEADER_LENGTH, BadRequest, infer_response, parse_infer
from .repository import NAME, ServedModel

VERSION = "0.1.0"
MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer|/classify)?$")


class App:
    """One server over a fixed set of loaded models."""

    def __init__(self, models: dict[str, ServedModel], max_batch: int = 64,
                 max_delay_ms: float = 2.0, max_body: int = 16 << 20, token: str | None = None,
                 workers: int = 2):
        self.models, self.metrics = models, Metrics()
        self.max_body, self.token = max_body, token
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ort")
        for m in models.values():
            m.batcher = Batcher(m.run, max_batch, max_delay_ms / 1000, self.executor,
                                self.metrics.batch.observe, self.metrics.queue.observe, workers,
                                inline=m.call_seconds < INLINE_SECONDS)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route, status = "other", 500
        try:
            route, status, body, headers = await self._handle(scope, receive)
        except BadRequest as exc:
            status, body, headers = exc.status, orjson.dumps({"error": str(exc)}), \
                {"content-type": "application/json"}
        except Exception as exc:  # never a traceback to the client; the server keeps serving
            status, body, headers = 500, orjson.dumps({"error": f"internal error: "
                                                       f"{type(exc).__name__}: {exc}"}), \
                {"content-type": "application/json"}
        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.request(route, status, time.perf_counter() - started)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for m in self.models.values():
                    await m.batcher.close()
                self.executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope, receive) -> bytes:
        declared = self._header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise BadRequest(f"body of {declared} bytes exceeds the limit of {self.max_body}", 413)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected", 400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BadRequest(f"body exceeds the limit of {self.max_body} bytes", 413)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    def _header(scope, name: str) -> str | None:
        key = name.encode()
        for k, v in scope["headers"]:
            if k == key:
                return v.decode("latin-1")
        return None

    def _json(self, doc, status: int = 200):
        return status, orjson.dumps(doc), {"content-type": "application/json"}

    def _authorized(self, scope) -> bool:
        if self.token is None:
            return True
        given = self._header(scope, "authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    async def _handle(self, scope, receive):
        path, method = scope["path"], scope["method"]
        if path in ("/v2/health/live", "/v2/health/ready"):
            return ("health",) + self._json({"live": True} if path.endswith("live") else
                                            {"ready": bool(self.models)})
        if not self._authorized(scope):
            raise BadRequest("missing or wrong bearer token (Authorization: Bearer <token>)", 401)
        if path == "/metrics":
            return "metrics", 200, self.metrics.render().encode(), \
                {"content-type": "text/plain; version=0.0.4"}
        if path == "/v2":
            return ("server",) + self._json({"name": "cnnbp", "version": VERSION,
                                             "extensions": ["binary_tensor_data", "classify"]})
        match = MODEL_ROUTE.match(path)
        if not match:
            raise BadRequest(f"no route {method} {path}", 404)
        name, version, action = match.groups()
        if not NAME.match(name):
            raise BadRequest(f"invalid model name {name!r}: letters, digits, '_', '.', '-'", 400)
        model = self.models.get(name)
        if model is None:
            raise BadRequest(f"unknown model {name!r}; serving: {', '.join(sorted(self.models))}", 404)
        if version not in (None, "1"):
            raise BadRequest(f"model {name!r} has version 1 only, not {version!r}", 404)
        if action in (None, "/ready"):
            if method != "GET":
                raise BadRequest(f"{path} takes GET", 405)
            return ("metadata",) + self._json(model.metadata() if action is None
                                              else {"name": name, "ready": True})
        if method != "POST":
            raise BadRequest(f"{path} takes POST", 405)
        body = await self._body(scope, receive)
        if action == "/infer":
            req = parse_infer(body, self._header(scope, HEADER_LENGTH), "input", model.input_shape)
            probs = await model.batcher.submit(req.tensor)
            return ("infer",) + (200,) + infer_response(name, req.id, "probabilities", probs,
                                                        req.binary_output)
        return ("classify",) + self._json(await self._classify(model, scope, body))

    async def _classify(self, model: ServedModel, scope, body: bytes) -> dict:
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            k = int(query.get("top_k", ["3"])[0])
        except ValueError:
            raise BadRequest("top_k must be a whole number") from None
        kind = (self._header(scope, "content-type") or "").split(";")[0].strip()
        if kind == "application/json":
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"malformed JSON: {exc}") from None
            if not isinstance(doc, dict) or "signal" not in doc:
                raise BadRequest('send {"signal": [numbers]} or an image (PNG/JPEG)')
            x = model.from_signal(doc["signal"])
        else:
            x = model.from_image(body)
        probs = (await model.batcher.submit(x))[0]
        top = np.argsort(-probs)[:max(1, min(k, len(probs)))]
        return {"model_name": model.name, "top_k": [
            {"label": model.labels[i], "index": int(i), "probability": float(probs[i])} for i in top]}
