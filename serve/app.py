"""The ASGI application: the served models, their batchers and threads, auth, errors, metrics
and the lifespan (start-up and shutdown); the routes are in routes.py.

The gRPC service (grpc_service.py) runs on the same event loop, started and stopped by the
ASGI lifespan, and shares the models, their batchers and the metrics through ``App``.
"""
from __future__ import annotations

import asyncio
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
from starlette.exceptions import HTTPException

from cnnbp.contract.errors import UsageError

from .auth import PUBLIC, UNAUTHORIZED, BearerAuth
from .batcher import INLINE_SECONDS, Batcher
from .body import header, offload
from .config import ServeConfig
from .metrics import Metrics, ModelStats
from .protocol import BadRequest, classification, parse_infer
from .repository import NAME, ServedModel
from .routes import allowed, route_name, router, server_metadata

JSON = [(b"content-type", b"application/json")]
log = logging.getLogger("cnnbp.serve")
access = logging.getLogger("cnnbp.serve.access")  # its own logger, so a deployment can mute it


class App:
    """One server over a fixed set of loaded models, with the settings of ``config``."""

    def __init__(self, models: dict[str, ServedModel], config: ServeConfig):
        if "stats" in models:  # /v2/models/stats is every model's statistics, as in Triton
            raise UsageError("a model named 'stats' cannot be served: GET /v2/models/stats is "
                             "the statistics of every model (Triton's route); rename its folder")
        self.models, self.config, self.metrics = models, config, Metrics()
        self.auth = BearerAuth(config.token)
        self.grpc = None
        self.stopping = asyncio.Event()  # set on shutdown: open gRPC streams stop reading
        self.executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="ort")
        # images and large request bodies decode on their own threads: a slow decode never
        # holds up an ONNX Runtime worker, nor the event loop
        self.decoder = ThreadPoolExecutor(max_workers=config.decode_workers,
                                          thread_name_prefix="decode")
        # JSON and protobuf parses hold the GIL from start to end (bounded: MAX_JSON_BYTES,
        # wire.py): one at a time, so the event loop waits for at most one of them, never for
        # a second parse thread that won the GIL when the first let it go
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = config.max_image_pixels  # PIL's own bomb check agrees with ours
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # refused as 413
        self.stats = {name: ModelStats(name, self.metrics) for name in models}
        for name, m in models.items():
            m.batcher = Batcher(m.run, config.max_batch, config.max_delay_ms / 1000,
                                self.executor, self.stats[name].executed,
                                self.stats[name].queued, config.workers,
                                inline=m.call_seconds < INLINE_SECONDS)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        answer = {"status": 500, "size": 0, "started": False}

        async def sent(message):  # what the response was, for /metrics and the access log
            if message["type"] == "http.response.start":
                answer["status"], answer["started"] = message["status"], True
            else:
                answer["size"] += len(message.get("body", b""))
            await send(message)

        path = scope["path"]
        scope["app"] = self  # Starlette's router then raises HTTPException for 404 and 405
        try:
            if path not in PUBLIC and not self.auth.allows(header(scope, b"authorization")):
                raise BadRequest("missing or wrong bearer token (Authorization: Bearer "
                                 "<token>)", 401, UNAUTHORIZED)
            await router(scope, receive, sent)
        except BadRequest as exc:
            await self._error(sent, exc.status, str(exc), exc.headers)
        except HTTPException as exc:  # no route for the path, or not this method
            if exc.status_code == 405:
                allow = allowed(scope["route"])
                await self._error(sent, 405, f"{path} takes {allow}, not {scope['method']}",
                                  {"allow": allow})
            else:
                await self._error(sent, exc.status_code, f"no route {scope['method']} {path}")
        except Exception:  # a bug: the traceback goes to the log, never to the client
            log.exception("internal error on %s %r", scope.get("method"), path)
            await self._error(sent, 500, "internal error")
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when the shutdown grace runs out, and
            # answers a cancelled request with a bare 500: say what happened instead
            if not self.stopping.is_set():
                raise
            if not answer["started"]:
                await self._error(sent, 503, "the server shut down before this request "
                                  f"finished: in-flight requests get {self.config.grace:g} s "
                                  "after SIGINT/SIGTERM (--grace); send it again to a running "
                                  "server", {"retry-after": "1"})
            log.warning("%s %s: cancelled at shutdown, %g s grace ran out",
                        scope.get("method"), path, self.config.grace)
        seconds = time.perf_counter() - started
        route = scope["route"].name if "route" in scope else route_name(path)
        self.metrics.request(route, answer["status"], seconds)
        if access.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            access.info('%s:%s "%s %s" %d %d %.2fms', client[0], client[1], scope["method"],
                        path, answer["status"], answer["size"], seconds * 1000)

    @staticmethod
    async def _error(send, status: int, message: str, headers: dict | None = None) -> None:
        """Send ``{"error": message}`` with ``status`` and any extra ``headers``."""
        body = orjson.dumps({"error": message})
        raw = JSON + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def refused(self, path: str | None, status: int) -> None:
        """Count a request the connection layer refused (431, 408, 400, 503)."""
        self.metrics.request(route_name(path) if path else "connection", status, None)

    def authorized(self, value: bytes | None) -> bool:
        """Whether an Authorization value (HTTP header or gRPC metadata) carries the token."""
        return self.auth.allows(value)

    def server_metadata(self) -> dict:
        """The V2 server metadata, for gRPC's ServerMetadata."""
        return server_metadata()

    async def offload(self, fn, size: int):
        """``fn()`` for a request of ``size`` bytes: inline when small, else on the parse
        thread."""
        return await offload(self.parser, fn, size)

    def begin_shutdown(self, sig: int) -> None:
        """On SIGINT/SIGTERM (from the signal handler): log it, and let gRPC take no new calls
        nor new requests on open streams."""
        import signal
        log.info("%s: shutting down; in-flight requests get up to %g s to finish",
                 signal.Signals(sig).name, self.config.grace)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self.stopping.set)
        if self.grpc is not None:
            server = self.grpc
            loop.call_soon_threadsafe(lambda: loop.create_task(server.stop(self.config.grace)))

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.grpc_address is not None:
                    from .grpc_service import start
                    try:
                        self.grpc = await start(self, self.config.grpc_address)
                    except BadRequest as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":  # HTTP requests have finished
                self.stopping.set()
                if self.grpc is not None:
                    await self.grpc.stop(self.config.grace)
                for m in self.models.values():
                    await m.batcher.close()
                self.executor.shutdown(wait=True)
                self.decoder.shutdown(wait=True)
                self.parser.shutdown(wait=True)
                log.info("stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    def infer_request(self, model: ServedModel, body: bytes, header_length: str | None):
        """An HTTP infer body → its request, the tensor already in the model's input form."""
        req = parse_infer(body, header_length, model.inputs, self.config.rows_per_request,
                          classes=len(model.labels))
        req.tensor = model.model_input(req.input_name, req.tensor)
        return req

    def model(self, name: str, version: str | None) -> ServedModel:
        """The served model ``name`` (version 1 or unspecified); 400/404 otherwise."""
        if not NAME.match(name):
            raise BadRequest(f"invalid model name {name!r}: letters, digits, '_', '.', '-'", 400)
        model = self.models.get(name)
        if model is None:
            raise BadRequest(f"unknown model {name!r}; serving: {', '.join(sorted(self.models))}",
                             404)
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
        if not np.isfinite(probs).all():  # rows are independent: this request's own inputs
            raise BadRequest("the model's outputs are not finite (NaN or Inf): the input values "
                             "are so large that float32 arithmetic overflows; send inputs in the "
                             "range the model was trained on", 422)
        return classification(probs, class_count, model.labels) if class_count else probs
