"""`cnnbp predict`: classify files locally in ONNX Runtime or through a running server (HTTP
or gRPC)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from cnnbp.contract.errors import ClientError, ServerError

from .protocol import BadRequest

# gRPC statuses that mean the request was wrong, not the server
CLIENT_STATUSES = {"INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED",
                   "RESOURCE_EXHAUSTED", "OUT_OF_RANGE", "FAILED_PRECONDITION"}

IMAGES = {".png", ".jpg", ".jpeg"}


def _signal(path: Path):
    """A 1-D signal from a .npy array or a JSON list; a clear error naming the file if not."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path).tolist()
        except FileNotFoundError:
            raise
        except (ValueError, EOFError, OSError) as exc:  # not .npy, truncated, or pickled
            raise BadRequest(f"{path}: not a loadable .npy array ({exc})") from None
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{path}: not a PNG/JPEG image (by its suffix), so read as a signal, "
                         f"but it is not JSON ({exc}); give a .png/.jpg image, a .npy array or "
                         "a .json list of numbers") from None


def _each(files: list[str], classify: Callable[[Path], dict],
          failed: list[str] | None) -> list[dict]:
    """``classify`` applied to each file. With a ``failed`` list, a file that cannot be read or
    that the model cannot take is named there (one line) and the others still get answers;
    without one, the first such file raises. A server's own failure always raises."""
    results = []
    for f in map(Path, files):
        try:
            results.append(classify(f))
        except ClientError as exc:
            if failed is None:
                raise
            failed.append(str(exc))
        except OSError as exc:  # missing, a folder, unreadable: bad input, as a bad image is
            if failed is None:
                raise
            failed.append(f"{f}: {exc.strerror or exc}")
    return results


def predict_local(bundle: str, files: list[str], top_k: int = 3,
                  failed: list[str] | None = None) -> list[dict]:
    """The ``top_k`` classes of each file from the bundle's model in ONNX Runtime (see
    ``_each`` for ``failed``)."""
    from . import repository
    models = repository.load(bundle)
    if len(models) != 1:
        raise BadRequest(f"{bundle} holds {len(models)} models; point at one bundle")
    model = next(iter(models.values()))

    def classify(f: Path) -> dict:
        probs = model.run(_sample(model, f))[0]
        top = np.argsort(-probs)[:top_k]
        return {"file": str(f), "top_k": [{"label": model.labels[i], "index": int(i),
                                           "probability": float(probs[i])} for i in top]}
    return _each(files, classify, failed)


def _sample(model, f: Path) -> np.ndarray:
    """One model input from an image or signal file, errors naming the file."""
    try:
        return model.from_image(f.read_bytes()) if f.suffix.lower() in IMAGES else \
            model.from_signal(_signal(f))
    except BadRequest as exc:
        raise BadRequest(str(exc) if str(exc).startswith(f"{f}: ") else f"{f}: {exc}") from None


def predict_grpc(url: str, model: str, files: list[str], top_k: int = 3,
                 token: str | None = None, failed: list[str] | None = None) -> list[dict]:
    """Through a gRPC server with the stock ``tritonclient.grpc`` client.

    The V2 protocol has no image endpoint, so the inputs are made here, with the preprocessing
    the server publishes in Triton's model config; the top k come back through Triton's
    classification extension (``class_count``) as ``"score:index:label"`` strings.
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from cnnbp.contract.preprocessing import Preprocessing

    from .repository import ServedModel
    target = url.removeprefix("grpc://").rstrip("/")
    headers = {"authorization": f"Bearer {token}"} if token else None
    try:
        client = grpcclient.InferenceServerClient(target)
        config = client.get_model_config(model, headers=headers, client_timeout=30).config
        prep = Preprocessing.model_validate_json(config.parameters["preprocess"].string_value)
    except InferenceServerException as exc:
        raise _grpc_error(exc, url) from None
    except ValueError:  # no or unreadable preprocess parameter: not a cnnbp server
        raise ServerError(f"{url} did not answer like `cnnbp serve` (no preprocess in the model "
                         "config)") from None
    # the raw tensor (pixels.onnx's input), which every model of `cnnbp serve` takes
    shim = ServedModel(model, Path(model), None, "", tuple(prep.input_shape), prep, feed="pixels")
    kind = shim.inputs[0].datatype

    def classify(f: Path) -> dict:
        x = _sample(shim, f)
        inp = grpcclient.InferInput("pixels", list(x.shape), kind)
        inp.set_data_from_numpy(np.ascontiguousarray(x))
        # the server takes 1..classes; --top-k above that means every class
        out = grpcclient.InferRequestedOutput("probabilities",
                                              class_count=min(top_k, len(prep.class_names)))
        try:
            result = client.infer(model, [inp], outputs=[out], headers=headers, client_timeout=30)
        except InferenceServerException as exc:
            raise _grpc_error(exc, f) from None
        top = []
        for item in result.as_numpy("probabilities").reshape(-1):
            score, index, label = item.decode().split(":", 2)
            top.append({"label": label, "index": int(index), "probability": float(score)})
        return {"file": str(f), "top_k": top}
    try:
        return _each(files, classify, failed)
    finally:
        client.close()


def _grpc_error(exc, where) -> Exception:
    status = str(exc.status() or "").removeprefix("StatusCode.")
    if status == "UNAVAILABLE":
        return ServerError(f"{where}: cannot reach the server ({exc.message()})")
    kind = BadRequest if status in CLIENT_STATUSES else ServerError
    return kind(f"{where}: server answered {status}: {exc.message()}")


def predict_remote(url: str, model: str, files: list[str], top_k: int = 3,
                   token: str | None = None, failed: list[str] | None = None) -> list[dict]:
    """The ``top_k`` classes of each file from a running ``cnnbp serve`` (HTTP or gRPC); see
    ``_each`` for ``failed``."""
    if url.startswith("grpc://"):
        return predict_grpc(url, model, files, top_k, token, failed)
    import urllib.error
    import urllib.request

    def classify(f: Path) -> dict:
        if f.suffix.lower() in IMAGES:
            body, kind = f.read_bytes(), "image/png" if f.suffix.lower() == ".png" else "image/jpeg"
        else:
            body, kind = json.dumps({"signal": _signal(f)}).encode(), "application/json"
        req = urllib.request.Request(f"{url.rstrip('/')}/v2/models/{model}/classify?top_k={top_k}",
                                     data=body, headers={"content-type": kind}, method="POST")
        if token:  # bytes: http.client would send a str as Latin-1; the server expects UTF-8
            req.add_header("authorization", b"Bearer " + token.encode("utf-8", "surrogateescape"))
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                doc = json.loads(resp.read())
            return {"file": str(f), "top_k": doc["top_k"]}
        except urllib.error.HTTPError as exc:
            kind = BadRequest if 400 <= exc.code < 500 else ServerError
            raise kind(f"{f}: server answered {exc.code}: {_error_text(exc.read())}") \
                from None
        except urllib.error.URLError as exc:
            raise ServerError(f"cannot reach {url}: {exc.reason}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise ServerError(f"{f}: {url} did not answer like `cnnbp serve` (no top_k in the "
                             "reply)") from None
        except OSError as exc:  # reset or timed out mid-request
            raise ServerError(f"{f}: the connection to {url} failed: {exc}") from None
    return _each(files, classify, failed)


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
        return body[:200].decode("utf-8", "replace")
