"""Open Inference Protocol (KServe V2) request and response bodies, JSON and binary tensors.

Binary tensor data extension: the ``Inference-Header-Content-Length`` header gives the length
of the JSON part; the raw bytes of each input with a ``binary_data_size`` parameter follow in
order. Responses carry outputs the same way when the client asks for binary data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

HEADER_LENGTH = "inference-header-content-length"


class BadRequest(Exception):
    """Turned into HTTP ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class InferRequest:
    id: str | None
    tensor: np.ndarray
    binary_output: bool


def parse_infer(body: bytes, header_length: str | None, input_name: str,
                input_shape: tuple[int, ...]) -> InferRequest:
    """Decode an infer request for a model with one FP32 input of ``(batch, *input_shape)``."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length must be a number, got "
                             f"{header_length!r}") from None
        if not 0 < n <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {n} does not fit a body of "
                             f"{len(body)} bytes")
        head, rest = body[:n], memoryview(body)[n:]
    else:
        head, rest = body, memoryview(b"")
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        hint = " (JSON has no NaN or Infinity: every value must be a finite number)" \
            if b"NaN" in head or b"Infinity" in head else ""
        raise BadRequest(f"malformed JSON: {exc}{hint}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadRequest('the request needs "inputs": [{"name", "shape", "datatype", "data"}]')
    inputs = doc["inputs"]
    found = [i for i in inputs if isinstance(i, dict) and i.get("name") == input_name]
    if not found:
        names = [i.get("name") for i in inputs if isinstance(i, dict)]
        raise BadRequest(f"missing input {input_name!r} (got {names})")
    offset, tensor = 0, None
    for spec in inputs:  # binary inputs are laid out in request order
        size = (spec.get("parameters") or {}).get("binary_data_size") if isinstance(spec, dict) else None
        if spec is found[0]:
            tensor = _tensor(spec, rest[offset:offset + size] if size is not None else None,
                             input_shape)
        if size is not None:
            offset += int(size)
    if offset > len(rest):
        raise BadRequest(f"binary data truncated: inputs declare {offset} bytes, the body has "
                         f"{len(rest)}")
    binary = bool((doc.get("parameters") or {}).get("binary_data_output"))
    for out in doc.get("outputs") or []:
        if isinstance(out, dict) and (out.get("parameters") or {}).get("binary_data"):
            binary = True
    rid = doc.get("id")
    return InferRequest(str(rid) if rid is not None else None, tensor, binary)


def _tensor(spec: dict, raw, input_shape: tuple[int, ...]) -> np.ndarray:
    name = spec.get("name")
    if spec.get("datatype") != "FP32":
        raise BadRequest(f"input {name!r} must have datatype FP32, got {spec.get('datatype')!r}")
    shape = spec.get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise BadRequest(f"input {name!r} needs a shape of whole numbers, got {shape!r}")
    if tuple(shape[1:]) != tuple(input_shape) or shape[0] < 1:
        want = "[batch, " + ", ".join(map(str, input_shape)) + "]"
        raise BadRequest(f"input {name!r} has shape {shape}; this model takes {want}")
    count = int(np.prod(shape))
    if raw is not None:
        if len(raw) != count * 4:
            raise BadRequest(f"input {name!r}: binary_data_size {len(raw)} bytes, but shape "
                             f"{shape} of FP32 needs {count * 4} (truncated or wrong size)")
        array = np.frombuffer(raw, dtype="<f4").reshape(shape)
    else:
        data = spec.get("data")
        if data is None:
            raise BadRequest(f"input {name!r} has neither data nor binary_data_size")
        try:
            array = np.asarray(data)
        except (ValueError, TypeError):
            raise BadRequest(f"input {name!r}: data must be a (nested) list of numbers") from None
        if array.dtype.kind not in "iuf":  # strings, booleans, ragged lists
            raise BadRequest(f"input {name!r}: data must be a (nested) list of numbers")
        array = array.astype("float32", copy=False)
        if array.size != count:
            raise BadRequest(f"input {name!r}: {array.size} values for shape {shape} ({count})")
        array = array.reshape(shape)
    if not np.isfinite(array).all():
        raise BadRequest(f"input {name!r} contains NaN or Inf")
    return array


def infer_response(model: str, rid: str | None, output_name: str, probs: np.ndarray,
                   binary: bool) -> tuple[bytes, dict[str, str]]:
    """Body and extra headers of an infer response."""
    out = {"name": output_name, "datatype": "FP32", "shape": list(probs.shape)}
    doc = {"model_name": model, "model_version": "1", "outputs": [out]}
    if rid is not None:
        doc["id"] = rid
    if not binary:
        out["data"] = probs.reshape(-1).tolist()
        return orjson.dumps(doc), {"content-type": "application/json"}
    raw = np.ascontiguousarray(probs, dtype="<f4").tobytes()
    out["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps(doc)
    return head + raw, {"content-type": "application/octet-stream",
                        HEADER_LENGTH: str(len(head))}
