"""The ASGI application: Open Inference Protocol routes, Triton's model configuration and
statistics, a classify shortcut, the bundle's report, metrics, auth.

The gRPC service (grpc_service.py) runs on the same event loop, started and stopped by the
ASGI lifespan, and shares the models, their batchers and the metrics through ``App``.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import numpy as np
import orjson

from cnnbp.contract.errors import UsageError

from .batcher import INLINE_SECONDS, Batcher
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics, ModelStats
from .page import page
from .protocol import (HEADER_LENGTH, OUTPUT, BadRequest, check_json_size, classification,
                       infer_response, json_limit, load_json, model_config, parse_infer, short_repr)
from .repository import MAX_IMAGE_PIXELS, NAME, ServedModel

VERSION = "0.1.0"
MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?"
                         r"(/ready|/infer|/classify|/config|/stats|/report\.html)?$")
# /v2/models/stats is every model's statistics (as in Triton): no model may be named "stats";
# /report.html is the one served model's report
ROUTES = {"/v2/health/live": "health", "/v2/health/ready": "health", "/metrics": "metrics",
          "/v2": "server", "/": "page", "/v2/repository/index": "index",
          "/v2/models/stats": "stats", "/report.html": "report"}
ACTIONS = {None: "metadata", "/ready": "metadata", "/infer": "infer", "/classify": "classify",
           "/config": "config", "/stats": "stats", "/report.html": "report"}
METHODS = {"health": "GET", "metrics": "GET", "server": "GET", "metadata": "GET", "page": "GET",
           "infer": "POST", "classify": "POST", "index": "POST", "config": "GET", "stats": "GET",
           "report": "GET"}
JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"}
# A bundle's report is a file from elsewhere, served at the API's origin: it runs no script and
# loads nothing (the figures are data: URIs), so a doctored one cannot act with the page's token
REPORT = {**HTML, "content-security-policy": "sandbox; default-src 'none'; img-src data:; "
                                             "style-src 'unsafe-inline'"}
# Triton's names, and ours: classify (POST an image), streaming (gRPC ModelStreamInfer)
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics",
              "classify", "streaming"]
# bodies up to this size are parsed on the event loop (well under a millisecond): the hop to a
# thread would cost more; bigger ones on the parse thread, one at a time. A parse holds the GIL
# whatever thread runs it, so its cost is bounded by size (protocol.MAX_JSON_BYTES, wire.py)
INLINE_BYTES = 64 << 10
UNAUTHORIZED = {"www-authenticate": "Bearer"}  # RFC 6750 section 3
log = logging.getLogger("cnnbp.serve")
access = logging.getLogger("cnnbp.serve.access")  # its own logger, so a deployment can mute it


class App:
    """One server over a fixed set of loaded models."""

    def __init__(self, models: dict[str, ServedModel], max_batch: int = 64,
                 max_delay_ms: float = 2.0, max_body: int = 16 << 20, token: str | None = None,
                 workers: int = 2, max_batch_rows: int | None = None,
                 max_image_pixels: int = MAX_IMAGE_PIXELS, decode_workers: int = 2,
                 grpc_address: str | None = None, grace: float = 30.0,
                 max_concurrent_rpcs: int = 1000, stream_idle: float = 60.0):
        if "stats" in models:  # /v2/models/stats is every model's statistics, as in Triton
            raise UsageError("a model named 'stats' cannot be served: GET /v2/models/stats is "
                             "the statistics of every model (Triton's route); rename its folder")
        self.models, self.metrics = models, Metrics()
        self.stream_idle = stream_idle  # seconds a gRPC stream may wait with nothing in flight
        self.max_body, self.token = max_body, token
        self.max_batch_rows = max_batch if max_batch_rows is None else max_batch_rows
        self.max_image_pixels = max_image_pixels
        self.grpc_address, self.grace, self.grpc = grpc_address, grace, None
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self.stopping = asyncio.Event()  # set on shutdown: open gRPC streams stop reading
        # header bytes are compared raw; the token is sent as UTF-8 (surrogateescape keeps a
        # CNNBP_TOKEN that is not valid UTF-8 as the bytes it was)
        self.expected_auth = None if token is None else token.encode("utf-8", "surrogateescape")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ort")
        # images and large request bodies decode on their own threads: a slow decode never
        # holds up an ONNX Runtime worker, nor the event loop
        self.decoder = ThreadPoolExecutor(max_workers=decode_workers, thread_name_prefix="decode")
        # JSON and protobuf parses hold the GIL from start to end (bounded: MAX_JSON_BYTES,
        # wire.py): one at a time, so the event loop waits for at most one of them, never for
        # a second parse thread that won the GIL when the first let it go
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = max_image_pixels  # PIL's own bomb check agrees with ours
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # refused as 413
        self.stats = {name: ModelStats(name, self.metrics) for name in models}
        for name, m in models.items():
            m.batcher = Batcher(m.run, max_batch, max_delay_ms / 1000, self.executor,
                                self.stats[name].executed, self.stats[name].queued, workers,
                                inline=m.call_seconds < INLINE_SECONDS)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        route, match = self.route_of(path)
        try:
            status, body, headers = await self._handle(scope, receive, route, match)
        except BadRequest as exc:
            status, body = exc.status, orjson.dumps({"error": str(exc)})
            headers = {**JSON, **exc.headers} if exc.headers else JSON
        except Exception:  # a bug: the traceback goes to the log, never to the client
            log.exception("internal error on %s %r", scope.get("method"), path)
            status, body, headers = 500, b'{"error":"internal error"}', JSON
        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        self.metrics.request(route, status, seconds)
        if access.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            access.info('%s:%s "%s %s" %d %d %.2fms', client[0], client[1], scope["method"],
                        path, status, len(body), seconds * 1000)

    @staticmethod
    def route_of(path: str):
        """The metrics route of ``path``, and its model-route match (None for fixed routes)."""
        route = ROUTES.get(path)
        if route is not None:
            return route, None
        match = MODEL_ROUTE.match(path)
        return (ACTIONS[match.group(3)], match) if match else ("other", None)

    def refused(self, path: str | None, status: int) -> None:
        """Count a request the connection layer refused (431, 408, 400, 503)."""
        self.metrics.request(self.route_of(path)[0] if path else "connection", status, None)

    def begin_shutdown(self, sig: int) -> None:
        """On SIGINT/SIGTERM (from the signal handler): log it, and let gRPC take no new calls
        nor new requests on open streams."""
        import signal
        log.info("%s: shutting down; in-flight requests get up to %g s to finish",
                 signal.Signals(sig).name, self.grace)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self.stopping.set)
        if self.grpc is not None:
            server = self.grpc
            loop.call_soon_threadsafe(lambda: loop.create_task(server.stop(self.grace)))

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.grpc_address is not None:
                    from .grpc_service import start
                    try:
                        self.grpc = await start(self, self.grpc_address)
                    except BadRequest as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":  # HTTP requests have finished
                self.stopping.set()
                if self.grpc is not None:
                    await self.grpc.stop(self.grace)
                for m in self.models.values():
                    await m.batcher.close()
                self.executor.shutdown(wait=True)
                self.decoder.shutdown(wait=True)
                self.parser.shutdown(wait=True)
                log.info("stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope, receive, fits=lambda size: None) -> bytes:
        """The request body, up to ``max_body`` and what ``fits(size)`` lets through (it raises
        over the request's own bound); the connection layer times out a slow body."""
        declared = self._header(scope, "content-length")
        if declared is not None and declared.isascii() and declared.isdigit():
            if int(declared) > self.max_body:
                raise BadRequest(f"body of {declared} bytes exceeds the limit of {self.max_body} "
                                 "(--max-body)", 413)
            fits(int(declared))  # refused before a byte of it is read
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected", 400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BadRequest(f"body exceeds the limit of {self.max_body} bytes (--max-body)",
                                 413)
            fits(size)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    def _raw_header(scope, key: bytes) -> bytes | None:
        for k, v in scope["headers"]:
            if k == key:
                return v
        return None

    @classmethod
    def _header(cls, scope, name: str) -> str | None:
        value = cls._raw_header(scope, name.encode())
        return None if value is None else value.decode("latin-1")

    def _json(self, doc, status: int = 200):
        return status, orjson.dumps(doc), JSON

    def _authorized(self, scope) -> bool:
        return self.authorized(self._raw_header(scope, b"authorization"))

    def authorized(self, value: bytes | None) -> bool:
        """Whether an Authorization value (HTTP header or gRPC metadata) is ``Bearer <token>``;
        the scheme is case-insensitive (RFC 7235), the token compared in constant time."""
        if self.expected_auth is None:
            return True
        scheme, _, token = (value or b"").strip(b" \t").partition(b" ")
        # optional whitespace (RFC 9110's OWS) around the token is no part of it
        return hmac.compare_digest(token.strip(b" \t"), self.expected_auth) \
            and scheme.lower() == b"bearer"

    async def offload(self, fn, size: int):
        """``fn()`` for a request of ``size`` bytes: inline when small, else on the parse
        thread."""
        if size <= INLINE_BYTES:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self.parser, fn)

    def infer_request(self, model: ServedModel, body: bytes, header_length: str | None):
        """An HTTP infer body → its request, the tensor already in the model's input form."""
        req = parse_infer(body, header_length, model.inputs, self.max_batch_rows,
                          classes=len(model.labels))
        req.tensor = model.model_input(req.input_name, req.tensor)
        return req

    def model(self, name: str, version: str | None) -> ServedModel:
        """The served model ``name`` (version 1 or unspecified); 400/404 otherwise."""
        if not NAME.match(name):
            raise BadRequest(f"invalid model name {name!r}: letters, digits, '_', '.', '-'", 400)
        model = self.models.get(name)
        if model is None:
            raise BadRequest(f"unknown model {name!r}; serving: {', '.join(sorted(self.models))}", 404)
        if version not in (None, "", "1"):
            raise BadRequest(f"model {name!r} has version 1 only, not {version!r}", 404)
        return model

    async def predict(self, model: ServedModel, x: np.ndarray, class_count: int = 0,
                      timer=None) -> np.ndarray:
        """Scores ``[batch, classes]`` through the batcher, or top-k strings with a class count;
        ``timer`` (the request's statistics) learns when the model has answered."""
        probs = await model.batcher.submit(x)
        if timer is not None:
            timer.inferred()
        probs = self._finite(probs)
        return classification(probs, class_count, model.labels) if class_count else probs

    def server_metadata(self) -> dict:
        return {"name": "cnnbp", "version": VERSION, "extensions": EXTENSIONS}

    async def _handle(self, scope, receive, route: str, match):
        path, method = scope["path"], scope["method"]
        if route == "health":
            self._allow(route, method, path)
            return self._json({"live": True} if path.endswith("live") else
                              {"ready": bool(self.models)})
        if route == "page":  # the page holds no data: it asks for the model list with the token
            self._allow(route, method, path)
            return 200, page(self.expected_auth is not None), HTML
        if not self._authorized(scope):
            raise BadRequest("missing or wrong bearer token (Authorization: Bearer <token>)", 401,
                             UNAUTHORIZED)
        if route == "other":
            raise BadRequest(f"no route {method} {path}", 404)
        self._allow(route, method, path)
        if route == "metrics":
            return 200, self.metrics.render(), {"content-type": METRICS_TYPE}
        if route == "server":
            return self._json(self.server_metadata())
        if route == "index":  # Triton's repository index, for the page's model list
            return self._json([{"name": n, "version": "1", "state": "READY",
                                "domain": m.prep.domain, "input_shape": list(m.input_shape),
                                "classes": len(m.labels)} for n, m in sorted(self.models.items())])
        if match is None:  # the fixed routes over models: every model's statistics, the report
            return self._json({"model_stats": [s.to_json() for _, s in sorted(
                self.stats.items())]}) if route == "stats" else await self._report(None)
        name, version, action = match.groups()
        model = self.model(name, version)
        if route == "metadata":
            return self._json(model.metadata() if action is None else {"name": name, "ready": True})
        if route == "config":
            return self._json(model_config(model, self.max_batch_rows))
        if route == "stats":
            return self._json({"model_stats": [self.stats[name].to_json()]})
        if route == "report":
            return await self._report(model)
        with self.stats[name].request() as timer:  # an inference: counted in the statistics
            if route == "classify":
                body = await self._body(scope, receive)
                timer.read()
                return self._json(await self._classify(model, scope, body, timer))
            header = self._header(scope, HEADER_LENGTH)
            body = await self._body(scope, receive, lambda size: check_json_size(
                size, model.inputs, self.max_batch_rows, json_only=header is None))
            timer.read()
            req = await self.offload(lambda: self.infer_request(model, body, header), len(body))
            timer.decoded()
            probs = await self.predict(model, req.tensor, req.class_count, timer)
            return (200,) + infer_response(name, req.id, OUTPUT, probs, req.binary_output)

    async def _report(self, model: ServedModel | None):
        """The bundle's own report.html: of ``model``, or of the one model served."""
        if model is None:
            if len(self.models) != 1:
                raise BadRequest(f"/report.html is the report of the one model served; this "
                                 f"server has {len(self.models)}: GET /v2/models/NAME/report.html "
                                 f"(NAME one of {', '.join(sorted(self.models))})", 404)
            model = next(iter(self.models.values()))
        path = model.path.parent / "report.html"
        try:  # read off the event loop: a report with its figures is a few megabytes
            body = await asyncio.get_running_loop().run_in_executor(self.decoder, path.read_bytes)
        except OSError:
            raise BadRequest(f"model {model.name!r} has no report.html in its bundle; "
                             "`cnnbp report BUNDLE` writes one", 404) from None
        return 200, body, REPORT

    @staticmethod
    def _allow(route: str, method: str, path: str) -> None:
        allowed = METHODS[route]
        if method == allowed or (method == "HEAD" and allowed == "GET"):
            return  # uvicorn sends a HEAD answer's headers without its body
        allowed = "GET, HEAD" if allowed == "GET" else allowed
        raise BadRequest(f"{path} takes {allowed}, not {method}", 405, {"allow": allowed})

    @staticmethod
    def _finite(probs: np.ndarray) -> np.ndarray:
        # rows are independent, so a NaN here comes from this request's own inputs
        if not np.isfinite(probs).all():
            raise BadRequest("the model's outputs are not finite (NaN or Inf): the input values "
                             "are so large that float32 arithmetic overflows; send inputs in the "
                             "range the model was trained on", 422)
        return probs

    async def _classify(self, model: ServedModel, scope, body: bytes, timer) -> dict:
        query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        text, classes = query.get("top_k", ["3"])[0], len(model.labels)
        k = int(text) if text.isascii() and text.isdigit() else 0
        if k < 1:
            raise BadRequest(f"top_k must be a whole number from 1 to {classes} (the model's "
                             f"classes; a larger one returns all {classes}), got "
                             f"{short_repr(text)}")
        kind = (self._header(scope, "content-type") or "").split(";")[0].strip().lower()
        if kind.startswith("multipart/"):  # a browser form or `curl -F`: not decoded here
            raise BadRequest("send the image file itself as the request body with Content-Type "
                             "image/png or image/jpeg (curl --data-binary @digit.png -H "
                             "'Content-Type: image/png'), not a multipart form upload", 415)
        if kind == "application/json":
            x = await self.offload(lambda: self._signal(model, body), len(body))
        else:
            x = await asyncio.get_running_loop().run_in_executor(
                self.decoder, model.from_image, body, self.max_image_pixels)
        timer.decoded()
        probs = (await self.predict(model, x, 0, timer))[0]
        top = np.argsort(-probs)[:max(1, min(k, len(probs)))]
        return {"model_name": model.name, "top_k": [
            {"label": model.labels[i], "index": int(i), "probability": float(probs[i])} for i in top]}

    @staticmethod
    def _signal(model: ServedModel, body: bytes) -> np.ndarray:
        """A ``{"signal": [...]}`` body → one model input (one row: its JSON size is bounded)."""
        limit = json_limit(model.inputs, 1)
        if len(body) > limit:  # checked before parsing, so a huge list is never built
            raise BadRequest(f"the JSON body is {len(body):,} bytes; a signal of "
                             f"{math.prod(model.input_shape)} values takes at most {limit:,}", 413)
        doc = load_json(body)
        if not isinstance(doc, dict) or "signal" not in doc:
            raise BadRequest('send {"signal": [numbers]} or an image (PNG/JPEG)')
        return model.from_signal(doc["signal"])
