"""The classify shortcut: an image (PNG/JPEG) or ``{"signal": [...]}`` body → the top k labels."""
from __future__ import annotations

import asyncio
import math
from urllib.parse import parse_qs

import numpy as np

from .body import header, offload
from .protocol import BadRequest, json_limit, load_json, short_repr
from .repository import ServedModel


def top_k(scope, classes: int) -> int:
    """The ``top_k`` query parameter (default 3), a whole number >= 1; 400 otherwise."""
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
    text = query.get("top_k", ["3"])[0]
    k = int(text) if text.isascii() and text.isdigit() else 0
    if k < 1:
        raise BadRequest(f"top_k must be a whole number from 1 to {classes} (the model's "
                         f"classes; a larger one returns all {classes}), got {short_repr(text)}")
    return k


async def classify(app, model: ServedModel, scope, body: bytes, timer) -> dict:
    """The top-k answer of ``model`` for one image or signal ``body`` (``app``: the ``App``,
    for its threads and batchers; ``timer``: the request's statistics)."""
    k = top_k(scope, len(model.labels))
    kind = (header(scope, b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()
    if kind.startswith("multipart/"):  # a browser form or `curl -F`: not decoded here
        raise BadRequest("send the image file itself as the request body with Content-Type "
                         "image/png or image/jpeg (curl --data-binary @digit.png -H "
                         "'Content-Type: image/png'), not a multipart form upload", 415)
    if kind == "application/json":
        x = await offload(app.parser, lambda: signal(model, body), len(body))
    else:
        x = await asyncio.get_running_loop().run_in_executor(
            app.decoder, model.from_image, body, app.config.max_image_pixels)
    timer.decoded()
    probs = (await app.predict(model, x, 0, timer))[0]
    top = np.argsort(-probs)[:max(1, min(k, len(probs)))]
    return {"model_name": model.name, "top_k": [
        {"label": model.labels[i], "index": int(i), "probability": float(probs[i])} for i in top]}


def signal(model: ServedModel, body: bytes) -> np.ndarray:
    """A ``{"signal": [...]}`` body → one model input (one row: its JSON size is bounded)."""
    limit = json_limit(model.inputs, 1)
    if len(body) > limit:  # checked before parsing, so a huge list is never built
        raise BadRequest(f"the JSON body is {len(body):,} bytes; a signal of "
                         f"{math.prod(model.input_shape)} values takes at most {limit:,}", 413)
    doc = load_json(body)
    if not isinstance(doc, dict) or "signal" not in doc:
        raise BadRequest('send {"signal": [numbers]} or an image (PNG/JPEG)')
    return model.from_signal(doc["signal"])
