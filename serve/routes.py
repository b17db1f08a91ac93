"""The HTTP routes on Starlette's router: Open Inference Protocol (KServe V2) endpoints, Triton's
model configuration and statistics, the classify shortcut, the page, the report, metrics.

Each endpoint takes a Starlette ``Request`` whose ``app`` is the ``App`` (models, batchers,
threads, metrics) and returns a ``Response``; a ``BadRequest`` it raises becomes a JSON error
in ``App.__call__``. A route's name is its label in /metrics.
"""
from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router

from .body import header, offload, read_body
from .classify import classify
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .page import page
from .protocol import (
    HEADER_LENGTH,
    OUTPUT,
    BadRequest,
    check_json_size,
    infer_response,
    model_config,
)
from .repository import ServedModel

VERSION = "0.1.0"
HTML = {"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"}
# A bundle's report is a file from elsewhere, served at the API's origin: it runs no script and
# loads nothing (the figures are data: URIs), so a doctored one cannot act with the page's token
REPORT = {**HTML, "content-security-policy": "sandbox; default-src 'none'; img-src data:; "
                                             "style-src 'unsafe-inline'"}
# Triton's names, and ours: classify (POST an image), streaming (gRPC ModelStreamInfer)
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics",
              "classify", "streaming"]


def json(doc, status: int = 200) -> Response:
    """``doc`` as an application/json response."""
    return Response(orjson.dumps(doc), status, media_type="application/json")


def server_metadata() -> dict:
    """The V2 server metadata (HTTP GET /v2, gRPC ServerMetadata)."""
    return {"name": "cnnbp", "version": VERSION, "extensions": EXTENSIONS}


async def live(request: Request) -> Response:
    """GET /v2/health/live: the process answers."""
    return json({"live": True})


async def ready(request: Request) -> Response:
    """GET /v2/health/ready: models are loaded."""
    return json({"ready": bool(request.app.models)})


async def home(request: Request) -> Response:
    """GET /: the page (it holds no data; it asks for the model list with the token)."""
    return Response(page(request.app.auth.required), headers=HTML)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text."""
    return Response(request.app.metrics.render(), headers={"content-type": METRICS_TYPE})


async def server(request: Request) -> Response:
    """GET /v2: the server metadata."""
    return json(server_metadata())


async def index(request: Request) -> Response:
    """Triton's repository index, for the page's model list."""
    return json([{"name": n, "version": "1", "state": "READY", "domain": m.prep.domain,
                  "input_shape": list(m.input_shape), "classes": len(m.labels)}
                 for n, m in sorted(request.app.models.items())])


async def all_stats(request: Request) -> Response:
    """GET /v2/models/stats: every model's statistics, as Triton."""
    return json({"model_stats": [s.to_json() for _, s in sorted(request.app.stats.items())]})


def _model(request: Request) -> ServedModel:
    params = request.path_params
    return request.app.model(params["name"], params.get("version"))


async def metadata(request: Request) -> Response:
    """GET /v2/models/NAME: the model's metadata."""
    return json(_model(request).metadata())


async def model_ready(request: Request) -> Response:
    """GET /v2/models/NAME/ready."""
    return json({"name": _model(request).name, "ready": True})


async def config(request: Request) -> Response:
    """GET /v2/models/NAME/config: Triton's model configuration."""
    return json(model_config(_model(request), request.app.config.rows_per_request))


async def stats(request: Request) -> Response:
    """GET /v2/models/NAME/stats: the model's statistics."""
    return json({"model_stats": [request.app.stats[_model(request).name].to_json()]})


async def report(request: Request) -> Response:
    """The bundle's own report.html: of the model in the path, or of the one model served."""
    app = request.app
    if "name" in request.path_params:
        model = _model(request)
    elif len(app.models) == 1:
        model = next(iter(app.models.values()))
    else:
        raise BadRequest(f"/report.html is the report of the one model served; this server has "
                         f"{len(app.models)}: GET /v2/models/NAME/report.html (NAME one of "
                         f"{', '.join(sorted(app.models))})", 404)
    path = model.path.parent / "report.html"
    try:  # read off the event loop: a report with its figures is a few megabytes
        body = await asyncio.get_running_loop().run_in_executor(app.decoder, path.read_bytes)
    except OSError:
        raise BadRequest(f"model {model.name!r} has no report.html in its bundle; "
                         "`cnnbp report BUNDLE` writes one", 404) from None
    return Response(body, headers=REPORT)


async def infer(request: Request) -> Response:
    """V2 infer: JSON or binary tensor data in, scores or Triton's classification out."""
    app, model = request.app, _model(request)
    scope, rows = request.scope, app.config.rows_per_request
    with app.stats[model.name].request() as timer:  # an inference: counted in the statistics
        raw = header(scope, HEADER_LENGTH.encode())
        head = None if raw is None else raw.decode("latin-1")
        body = await read_body(scope, request.receive, app.config.max_body,
                               lambda size: check_json_size(size, model.inputs, rows,
                                                            json_only=head is None))
        timer.read()
        req = await offload(app.parser, lambda: app.infer_request(model, body, head), len(body))
        timer.decoded()
        probs = await app.predict(model, req.tensor, req.class_count, timer)
        content, headers = infer_response(model.name, req.id, OUTPUT, probs, req.binary_output)
        return Response(content, headers=headers)


async def classify_route(request: Request) -> Response:
    """POST an image (PNG/JPEG) or ``{"signal": [...]}``: the top ``top_k`` labels."""
    app, model = request.app, _model(request)
    with app.stats[model.name].request() as timer:
        body = await read_body(request.scope, request.receive, app.config.max_body)
        timer.read()
        return json(await classify(app, model, request.scope, body, timer))


def _model_routes(suffix: str, endpoint, name: str, methods: list[str]) -> list[Route]:
    """A model route with and without ``/versions/{version}`` (only version 1 exists)."""
    return [Route(f"/v2/models/{{name}}{suffix}", endpoint, methods=methods, name=name),
            Route(f"/v2/models/{{name}}/versions/{{version}}{suffix}", endpoint,
                  methods=methods, name=name)]


GET, POST = ["GET"], ["POST"]  # GET routes answer HEAD too (Starlette adds it)
# Starlette's router tries the routes in order: inference and the probes first (a regex match
# each, about a microsecond), and the fixed /v2/models/stats before /v2/models/{name}
ROUTES = [
    *_model_routes("/infer", infer, "infer", POST),
    Route("/v2/health/live", live, methods=GET, name="health"),
    Route("/v2/health/ready", ready, methods=GET, name="health"),
    Route("/", home, methods=GET, name="page"),
    Route("/metrics", metrics, methods=GET, name="metrics"),
    Route("/v2", server, methods=GET, name="server"),
    Route("/v2/repository/index", index, methods=POST, name="index"),
    # every model's statistics, as in Triton: no model may be named "stats"
    Route("/v2/models/stats", all_stats, methods=GET, name="stats"),
    Route("/report.html", report, methods=GET, name="report"),  # the one served model's
    *_model_routes("", metadata, "metadata", GET),
    *_model_routes("/ready", model_ready, "metadata", GET),
    *_model_routes("/classify", classify_route, "classify", POST),
    *_model_routes("/config", config, "config", GET),
    *_model_routes("/stats", stats, "stats", GET),
    *_model_routes("/report.html", report, "report", GET),
]
# "/v2/" is no route (404), not a redirect to "/v2"
router = Router(ROUTES, redirect_slashes=False)


def route_name(path: str) -> str:
    """The /metrics label of ``path`` whatever its method (``other`` when no route has it)."""
    scope = {"type": "http", "path": path, "method": "GET"}
    for route in ROUTES:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return route.name
    return "other"


def allowed(route: Route) -> str:
    """The Allow header of ``route``: "GET, HEAD" or "POST"."""
    return "GET, HEAD" if "GET" in route.methods else "POST"
