"""Open Inference Protocol (KServe V2) request and response bodies, JSON and binary tensors.

Binary tensor data extension: the ``Inference-Header-Content-Length`` header gives the length
of the JSON part; the raw bytes of each input with a ``binary_data_size`` parameter follow in
order. Responses carry outputs the same way when the client asks for binary data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson

from cnnbp.contract.errors import ClientError

HEADER_LENGTH = "inference-header-content-length"


class BadRequest(ClientError):
    """Turned into HTTP ``status`` with ``{"error": message}`` (and any extra ``headers``)."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass
class InferRequest:
    id: str | None
    tensor: np.ndarray
    binary_output: bool
    class_count: int = 0  # Triton's classification extension: top-k strings instead of scores


def _object(value, where: str) -> dict:
    """``value`` if it is a JSON object or absent (None → {}); else a 400 naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object, got {type(value).__name__} "
                         f"{short_repr(value)}")
    return value


def short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value) -> bool:
    """A JSON whole number: bool is an int subclass in Python, so it is excluded."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_infer(body: bytes, header_length: str | None, input_name: str,
                input_shape: tuple[int, ...], max_rows: int | None = None,
                output_name: str = "probabilities") -> InferRequest:
    """Decode an infer request for a model with one FP32 input of ``(batch, *input_shape)``.

    ``max_rows`` caps the batch of one request (413 over it), checked on the declared shape
    before any tensor is allocated.
    """
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
    spec = the_input(doc["inputs"], input_name)
    size = _object(spec.get("parameters"), f"input {input_name!r}: parameters") \
        .get("binary_data_size")
    if size is not None:
        if not _whole(size) or size < 0:
            raise BadRequest(f"input {input_name!r}: binary_data_size must be a whole number of "
                             f"bytes >= 0, got {short_repr(size)}")
        if size > len(rest):
            raise BadRequest(f"binary data truncated: inputs declare {size} bytes, the body has "
                             f"{len(rest)}")
    tensor = decode_tensor(spec, rest[:size] if size is not None else None, input_shape, max_rows)
    binary = bool(_object(doc.get("parameters"), "parameters").get("binary_data_output"))
    outputs = doc.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise BadRequest(f'"outputs" must be a list of {{"name", "parameters"}} objects, got '
                         f"{short_repr(outputs)}")
    class_count = 0
    for i, out in enumerate(outputs or []):
        out = _object(out, f"outputs[{i}]")
        params = _object(out.get("parameters"), f"outputs[{i}].parameters")
        check_output_name(out.get("name"), output_name, f"outputs[{i}].name")
        if params.get("binary_data"):
            binary = True
        # Triton's clients send "classification"; "class_count" is the name in its docs
        for key in ("classification", "class_count"):
            if key in params:
                class_count = check_class_count(params[key], f"outputs[{i}].parameters.{key}")
    rid = doc.get("id")
    return InferRequest(str(rid) if rid is not None else None, tensor, binary, class_count)


def check_output_name(name, output_name: str, where: str) -> None:
    if name != output_name:
        raise BadRequest(f"{where}: unknown output {short_repr(name)}; this model has one "
                         f"output, {output_name!r}")


def check_class_count(value, where: str) -> int:
    if not _whole(value) or value < 0:
        raise BadRequest(f"{where} must be a whole number >= 0 (0 = scores, k = the top k "
                         f"classes), got {short_repr(value)}")
    return value


def classification(probs: np.ndarray, k: int, labels: list[str]) -> np.ndarray:
    """Triton's classification output: ``[batch, k]`` strings ``"score:index:label"``, best first."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.array([[f"{row[i]:f}:{i}:{labels[i]}".encode() for i in idx]
                     for row, idx in zip(probs, top)], dtype=object).reshape(len(probs), k)


def bytes_tensor(values: np.ndarray) -> bytes:
    """The BYTES wire format of HTTP binary data and gRPC raw contents: length-prefixed items."""
    return b"".join(len(v).to_bytes(4, "little") + v for v in values.reshape(-1))


def the_input(inputs: list, input_name: str) -> dict:
    """The one input the model takes; missing, duplicate or unknown inputs are refused."""
    names = [i.get("name") if isinstance(i, dict) else None for i in inputs]
    if input_name not in names:
        raise BadRequest(f"missing input {input_name!r} (got {names})")
    if names.count(input_name) > 1:
        raise BadRequest(f"input {input_name!r} appears {names.count(input_name)} times; send "
                         "it once")
    others = [n for n in names if n != input_name]
    if others:
        raise BadRequest(f"unknown inputs {others}: this model takes one input, {input_name!r}")
    return inputs[names.index(input_name)]


def decode_tensor(spec: dict, raw, input_shape: tuple[int, ...], max_rows: int | None,
            raw_name: str = "binary_data_size", data_name: str = "data") -> np.ndarray:
    """One FP32 input from its spec and its raw bytes (or ``spec["data"]``), every field checked.

    ``raw_name``/``data_name`` name the fields in messages (they differ between HTTP and gRPC).
    """
    name = spec.get("name")
    if spec.get("datatype") != "FP32":
        raise BadRequest(f"input {name!r} must have datatype FP32, got "
                         f"{short_repr(spec.get('datatype'))}")
    shape = spec.get("shape")
    if not (isinstance(shape, list) and shape and all(_whole(d) and d >= 0 for d in shape)):
        raise BadRequest(f"input {name!r} needs a shape of whole numbers, got {short_repr(shape)}")
    if tuple(shape[1:]) != tuple(input_shape) or shape[0] < 1:
        want = "[batch, " + ", ".join(map(str, input_shape)) + "]"
        raise BadRequest(f"input {name!r} has shape {short_repr(shape)}; this model takes {want}")
    if max_rows is not None and shape[0] > max_rows:
        raise BadRequest(f"input {name!r} has a batch of {shape[0]} rows; this server takes at "
                         f"most {max_rows} per request (--max-batch-rows): split the batch", 413)
    count = math.prod(shape)  # Python ints: no overflow, and the rows are bounded above
    if raw is not None:
        if len(raw) != count * 4:
            raise BadRequest(f"input {name!r}: {raw_name} holds {len(raw)} bytes, but shape "
                             f"{shape} of FP32 needs {count * 4} (truncated or wrong size)")
        array = np.frombuffer(raw, dtype="<f4").reshape(shape)
    else:
        data = spec.get("data")
        if data is None:
            raise BadRequest(f"input {name!r} has neither {data_name} nor {raw_name}")
        # a flat list has `count` items, a nested one `rows`: anything else is refused before
        # NumPy copies it, so a small shape cannot carry a huge list
        if not isinstance(data, list) or len(data) not in (count, shape[0]):
            raise BadRequest(f"input {name!r}: {data_name} must be a list of {count} numbers "
                             "(flat) "
                             f"or {shape[0]} nested rows for shape {shape}")
        try:
            array = np.asarray(data)
        except (ValueError, TypeError, OverflowError):
            raise BadRequest(f"input {name!r}: data must be a (nested) list of numbers") from None
        if array.dtype.kind not in "iuf":  # strings, booleans, ragged lists
            raise BadRequest(f"input {name!r}: data must be a (nested) list of numbers")
        array = array.astype("float32", copy=False)
        if array.size != count:
            raise BadRequest(f"input {name!r}: {array.size} values for shape {shape} ({count})")
        array = array.reshape(shape)
    if not np.isfinite(array).all():
        raise BadRequest(f"input {name!r} contains NaN or Inf (or a value beyond the float32 "
                         "range, about 3.4e38)")
    return array


def infer_response(model: str, rid: str | None, output_name: str, probs: np.ndarray,
                   binary: bool) -> tuple[bytes, dict[str, str]]:
    """Body and extra headers of an infer response (``probs`` of dtype object: BYTES)."""
    kind = "BYTES" if probs.dtype == object else "FP32"
    out = {"name": output_name, "datatype": kind, "shape": list(probs.shape)}
    doc = {"model_name": model, "model_version": "1", "outputs": [out]}
    if rid is not None:
        doc["id"] = rid
    if not binary:
        out["data"] = [v.decode() for v in probs.reshape(-1)] if kind == "BYTES" else \
            probs.reshape(-1).tolist()
        return orjson.dumps(doc), {"content-type": "application/json"}
    raw = bytes_tensor(probs) if kind == "BYTES" else \
        np.ascontiguousarray(probs, dtype="<f4").tobytes()
    out["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps(doc)
    return head + raw, {"content-type": "application/octet-stream",
                        HEADER_LENGTH: str(len(head))}
