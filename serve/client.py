"""`cnnbp predict`: classify files locally in ONNX Runtime or through a running server."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .protocol import BadRequest

IMAGES = {".png", ".jpg", ".jpeg"}


def _signal(path: Path):
    if path.suffix == ".npy":
        return np.load(path).tolist()
    return json.loads(path.read_text())


def predict_local(bundle: str, files: list[str], top_k: int = 3) -> list[dict]:
    from . import repository
    models = repository.load(bundle)
    if len(models) != 1:
        raise BadRequest(f"{bundle} holds {len(models)} models; point at one bundle")
    model = next(iter(models.values()))
    results = []
    for f in map(Path, files):
        x = model.from_image(f.read_bytes()) if f.suffix.lower() in IMAGES else \
            model.from_signal(_signal(f))
        probs = model.run(x)[0]
        top = np.argsort(-probs)[:top_k]
        results.append({"file": str(f), "top_k": [{"label": model.labels[i], "index": int(i),
                                                    "probability": float(probs[i])} for i in top]})
    return results


def predict_remote(url: str, model: str, files: list[str], top_k: int = 3,
                   token: str | None = None) -> list[dict]:
    import urllib.error
    import urllib.request
    results = []
    for f in map(Path, files):
        if f.suffix.lower() in IMAGES:
            body, kind = f.read_bytes(), "image/png" if f.suffix.lower() == ".png" else "image/jpeg"
        else:
            body, kind = json.dumps({"signal": _signal(f)}).encode(), "application/json"
        req = urllib.request.Request(f"{url.rstrip('/')}/v2/models/{model}/classify?top_k={top_k}",
                                     data=body, headers={"content-type": kind}, method="POST")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise BadRequest(f"{f}: server answered {exc.code}: "
                             f"{json.loads(exc.read() or b'{}').get('error', '')}") from None
        except urllib.error.URLError as exc:
            raise BadRequest(f"cannot reach {url}: {exc.reason}") from None
        results.append({"file": str(f), "top_k": doc["top_k"]})
    return results
