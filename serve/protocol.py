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

from .errors import BadRequest, short_repr
from .v2 import infer_request

HEADER_LENGTH = "inference-header-content-length"
DTYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
# A JSON request may take this many bytes per value the row cap allows, plus a fixed overhead
# (id, parameters, outputs): "-1.2345678901234567e-05, " is 25, indented JSON around 40. The
# bound is checked before the JSON is parsed, so a body of millions of values never is.
JSON_BYTES_PER_VALUE = 64
JSON_OVERHEAD = 64 << 10
OUTPUT = "probabilities"  # the one output of every served model
MAX_INPUTS = 8  # entries in "inputs" or "outputs": more are refused before any is looked at
# JSON is parsed holding the GIL (orjson, then NumPy over the lists), and the event loop waits
# for it whatever thread parses: so a JSON text is bounded in bytes and in containers ('[' and
# '{', counted in C before parsing). Measured here (bench/parse_cost.py, docs/benchmarks.md):
# 3.9 MiB of float32 values nested per a shape of [N, 3] parse in 17 ms, then 7 ms to NumPy
# (two separate holds); 4 MiB of "0," 26 ms; but 1 MiB of "[]," takes 40-118 ms and 4 MiB
# 230-440 ms (the cyclic GC walks every new list), while 65,536 empty lists take 2.4 ms. One
# 224x224x3 image nested per its shape has 50,401 lists.
# Larger tensors go as binary tensor data (Inference-Header-Content-Length), which is
# bounded by --max-body only and read with np.frombuffer.
MAX_JSON_BYTES = 4 << 20
MAX_JSON_CONTAINERS = 1 << 16


@dataclass(frozen=True)
class TensorSpec:
    """An input a model accepts: its name, protocol datatype and the shape of one row."""

    name: str
    datatype: str  # a key of DTYPES
    shape: tuple[int, ...]
    about: str = ""  # what the values are, for messages and metadata

    @property
    def dims(self) -> str:
        """The shape with its batch dimension, as messages show it: ``[batch, 8, 8, 1]``."""
        return "[batch, " + ", ".join(map(str, self.shape)) + "]"

    def describe(self) -> str:
        """Name, datatype, shape and meaning, for messages:
        ``'input' (FP32 [batch, 8], normalised)``."""
        about = f", {self.about}" if self.about else ""
        return f"{self.name!r} ({self.datatype} {self.dims}{about})"


@dataclass
class InferRequest:
    """A decoded infer request: the tensor of its one input, and what the answer should be."""

    id: str | None
    tensor: np.ndarray
    binary_output: bool
    class_count: int = 0  # Triton's classification extension: top-k strings instead of scores
    input_name: str = "input"  # which of the model's inputs the tensor is


def model_config(model, max_batch_size: int) -> dict:
    """Triton's model configuration of a served model (a ``ServedModel``) as its HTTP JSON; the
    gRPC ModelConfig parses the same document. Its ``parameters`` carry the class names and the
    preprocessing, which a client needs to turn an image into the input tensor."""
    return {"name": model.name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
            "max_batch_size": max_batch_size,
            # a request sends exactly one of the inputs: with two, each is optional (Triton's
            # ModelInput.optional), so neither reads as required
            "input": [{"name": s.name, "data_type": f"TYPE_{s.datatype}", "dims": list(s.shape),
                       **({"optional": True} if len(model.inputs) > 1 else {})}
                      for s in model.inputs],
            "output": [{"name": OUTPUT, "data_type": "TYPE_FP32", "dims": [len(model.labels)]}],
            "parameters": {"class_names": {"string_value": orjson.dumps(model.labels).decode()},
                           "preprocess": {"string_value": orjson.dumps(
                               model.prep.to_json()).decode()}}}


def json_limit(inputs: tuple[TensorSpec, ...], max_rows: int | None) -> int | None:
    """The most bytes a JSON request for ``max_rows`` rows of ``inputs`` may take."""
    if max_rows is None:
        return None
    return max_rows * max(math.prod(s.shape) for s in inputs) * JSON_BYTES_PER_VALUE \
        + JSON_OVERHEAD


def check_json_size(size: int, inputs: tuple[TensorSpec, ...], max_rows: int | None,
                    json_only: bool = False) -> None:
    """413 for a request (or its JSON part) longer than the row cap allows, before it is
    parsed: binary tensors take fewer bytes a value than JSON, so the bound holds for both.
    ``json_only``: the whole request is JSON, so ``MAX_JSON_BYTES`` bounds it too."""
    limit = json_limit(inputs, max_rows)
    if limit is not None and size > limit:
        values = max(math.prod(s.shape) for s in inputs)
        raise BadRequest(f"the request is {size:,} bytes; {max_rows} rows of {values} values "
                         f"(--max-batch-rows) take at most {limit:,} ({JSON_BYTES_PER_VALUE} "
                         "bytes a value in JSON, fewer in binary): send fewer rows per request, "
                         "or the values as binary tensor data", 413)
    if json_only:
        check_json_text_size(size)


def check_json_text_size(size: int) -> None:
    """413 for a JSON text over ``MAX_JSON_BYTES``, before it is parsed."""
    if size > MAX_JSON_BYTES:
        raise BadRequest(f"the JSON text is {size:,} bytes; this server parses at most "
                         f"{MAX_JSON_BYTES:,} bytes of JSON (a larger parse would hold up every "
                         "other request): send the tensor as binary tensor data (Triton's "
                         "binary extension: Inference-Header-Content-Length and the input's "
                         "binary_data_size parameter; tritonclient does this by default), "
                         "or fewer rows per request", 413)


def load_json(text: bytes):
    """``text`` parsed, once its size and its count of '[' and '{' are within bounds
    (``MAX_JSON_BYTES``, ``MAX_JSON_CONTAINERS``); 413 or 400 otherwise."""
    check_json_text_size(len(text))
    containers = text.count(b"[") + text.count(b"{")
    if containers > MAX_JSON_CONTAINERS:
        raise BadRequest(f"the JSON text has {containers:,} '[' or '{{'; this server parses at "
                         f"most {MAX_JSON_CONTAINERS:,} (a tensor nested per its shape needs "
                         "far fewer than one a value): send the values as one flat list, or as "
                         "binary tensor data (Inference-Header-Content-Length)", 413)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        hint = " (JSON has no NaN or Infinity: every value must be a finite number)" \
            if b"NaN" in text or b"Infinity" in text else ""
        raise BadRequest(f"malformed JSON: {exc}{hint}") from None


def _whole(value) -> bool:
    """A JSON whole number: bool is an int subclass in Python, so it is excluded."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_infer(body: bytes, header_length: str | None, inputs: tuple[TensorSpec, ...],
                max_rows: int | None = None, output_name: str = "probabilities",
                classes: int | None = None) -> InferRequest:
    """Decode an infer request that sends one of ``inputs`` (each ``(batch, *shape)``).

    ``max_rows`` caps the batch of one request (413 over it): the JSON text is checked against
    it before it is parsed, the declared shape before any tensor is allocated. ``classes``
    bounds Triton's ``class_count``. Blocking for a large body: the server runs it off the
    event loop.
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
    check_json_size(len(head), inputs, max_rows)
    doc = load_json(head)
    if isinstance(doc, dict):  # counted before pydantic looks at any entry
        if isinstance(doc.get("inputs"), list):
            check_input_count(len(doc["inputs"]), inputs)
        if isinstance(doc.get("outputs"), list):
            check_output_count(len(doc["outputs"]), output_name)
    request = infer_request(doc)
    spec, want = the_input([dict(i) for i in request.inputs], inputs)
    size = spec["parameters"].binary_data_size if spec["parameters"] is not None else None
    if size is not None and size > len(rest):
        raise BadRequest(f"binary data truncated: inputs declare {size} bytes, the body has "
                         f"{len(rest)}")
    if len(rest) > (size or 0):
        raise BadRequest(f"the body has {len(rest)} bytes after its JSON part "
                         f"(Inference-Header-Content-Length {len(head)}), but the inputs declare "
                         f"{size or 0} (binary_data_size): {len(rest) - (size or 0)} trailing "
                         "bytes; send exactly the declared tensor data")
    tensor = decode_tensor(spec, rest[:size] if size is not None else None, want, max_rows)
    binary = bool(request.parameters and request.parameters.binary_data_output)
    class_count = 0
    for i, out in enumerate(request.outputs or []):
        check_output_name(out.name, output_name, f"outputs[{i}].name")
        params = out.parameters
        if params is not None and params.binary_data:
            binary = True
        # Triton's clients send "classification"; "class_count" is the name in its docs
        for key in ("classification", "class_count"):
            if params is not None and key in params.model_fields_set:
                class_count = check_class_count(getattr(params, key),
                                                f"outputs[{i}].parameters.{key}", classes)
    rid = request.id
    return InferRequest(str(rid) if rid is not None else None, tensor, binary, class_count,
                        want.name)


def check_output_count(count: int, output_name: str) -> None:
    """400 for more requested outputs than ``MAX_INPUTS``, before any is looked at."""
    if count > MAX_INPUTS:
        raise BadRequest(f"the request asks for {count} outputs; this model has one, "
                         f"{output_name!r}")


def check_output_name(name, output_name: str, where: str) -> None:
    """400 unless the requested output ``name`` is the model's one output."""
    if name != output_name:
        raise BadRequest(f"{where}: unknown output {short_repr(name)}; this model has one "
                         f"output, {output_name!r}")


def check_class_count(value, where: str, classes: int | None = None) -> int:
    """Triton's class_count: 0 (scores) or k from 1 to the number of classes."""
    if not _whole(value) or value < 0 or (classes is not None and value > classes):
        span = f"from 0 to {classes}" if classes is not None else ">= 0"
        raise BadRequest(f"{where} must be a whole number {span} (0 = scores, k = the top k "
                         f"classes), got {short_repr(value)}")
    return value


def classification(probs: np.ndarray, k: int, labels: list[str]) -> np.ndarray:
    """Triton's classification output: ``[batch, k]`` strings ``"score:index:label"``, best
    first."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.array([[f"{row[i]:f}:{i}:{labels[i]}".encode() for i in idx]
                     for row, idx in zip(probs, top)], dtype=object).reshape(len(probs), k)


def bytes_tensor(values: np.ndarray) -> bytes:
    """The BYTES wire format of HTTP binary data and gRPC raw contents: length-prefixed items."""
    return b"".join(len(v).to_bytes(4, "little") + v for v in values.reshape(-1))


def the_input(inputs: list, accepted: tuple[TensorSpec, ...]) -> tuple[dict, TensorSpec]:
    """The one input sent, of those the model accepts; missing, duplicate, unknown or several
    inputs are refused."""
    check_input_count(len(inputs), accepted)
    names = [i.get("name") if isinstance(i, dict) else None for i in inputs]
    known = {s.name: s for s in accepted}
    either = " or ".join(s.describe() for s in accepted)
    sent = [n for n in names if isinstance(n, str) and n in known]  # a name may be a list
    others = [n for n in names if n not in sent]
    if not sent:
        raise BadRequest(f"missing input {' or '.join(repr(n) for n in known)} (got {names}); "
                         f"this model takes one input, {either}")
    if others:
        raise BadRequest(f"unknown inputs {others}: this model takes one input, {either}")
    if len(set(sent)) > 1:
        raise BadRequest(f"inputs {sent}: send one of them, not several; this model takes one "
                         f"input, {either}")
    if len(sent) > 1:
        raise BadRequest(f"input {sent[0]!r} appears {len(sent)} times; send it once")
    return inputs[names.index(sent[0])], known[sent[0]]


def check_input_count(count: int, accepted: tuple[TensorSpec, ...]) -> None:
    """400 for more inputs than ``MAX_INPUTS``, before any is looked at."""
    if count > MAX_INPUTS:
        raise BadRequest(f"the request has {count} inputs; this model takes one, "
                         + " or ".join(s.describe() for s in accepted))


def decode_tensor(spec: dict, raw, want: TensorSpec, max_rows: int | None,
                  raw_name: str = "binary_data_size", data_name: str = "data") -> np.ndarray:
    """One input from its spec and its raw bytes (or ``spec["data"]``), every field checked.

    ``raw_name``/``data_name`` name the fields in messages (they differ between HTTP and gRPC);
    ``spec["data"]`` may be any sequence with a length (a gRPC repeated field): its length is
    checked before its values are read.
    """
    name, kind = want.name, want.datatype
    if spec.get("datatype") != kind:
        raise BadRequest(f"input {name!r} must have datatype {kind} (shape {want.dims}), got "
                         f"{short_repr(spec.get('datatype'))}")
    shape = spec.get("shape")
    if not (isinstance(shape, list) and shape and all(_whole(d) and d >= 0 for d in shape)):
        raise BadRequest(f"input {name!r} needs a shape of whole numbers, got {short_repr(shape)}")
    if tuple(shape[1:]) != tuple(want.shape) or shape[0] < 1:
        raise BadRequest(f"input {name!r} has shape {short_repr(shape)}; this model takes "
                         f"{want.dims} of {kind}")
    if max_rows is not None and shape[0] > max_rows:
        raise BadRequest(f"input {name!r} has a batch of {shape[0]} rows; this server takes at "
                         f"most {max_rows} per request (--max-batch-rows): split the batch", 413)
    count = math.prod(shape)  # Python ints: no overflow, and the rows are bounded above
    dtype = DTYPES[kind]
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise BadRequest(f"input {name!r}: {raw_name} holds {len(raw)} bytes, but shape "
                             f"{shape} of {kind} needs {count * dtype.itemsize} (truncated or "
                             "wrong size)")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    else:
        array = _values(spec.get("data"), name, kind, shape, count, raw_name, data_name)
    if kind == "FP32" and not np.isfinite(array).all():
        raise BadRequest(f"input {name!r} contains NaN or Inf (or a value beyond the float32 "
                         "range, about 3.4e38)")
    return array


def _values(data, name: str, kind: str, shape: list[int], count: int, raw_name: str,
            data_name: str) -> np.ndarray:
    """The tensor of a JSON (or typed gRPC) list of values."""
    if data is None:
        raise BadRequest(f"input {name!r} has neither {data_name} nor {raw_name}")
    # a flat list has `count` items, a nested one `rows`: anything else is refused before
    # NumPy copies it, so a small shape cannot carry a huge list
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__len__") \
            or len(data) not in (count, shape[0]):
        raise BadRequest(f"input {name!r}: {data_name} must be a list of {count} numbers "
                         f"(flat) or {shape[0]} nested rows for shape {shape}")
    what = "numbers" if kind == "FP32" else "whole numbers from 0 to 255"
    try:  # a gRPC repeated field is flat and typed: read without a list of Python floats
        array = np.asarray(data) if isinstance(data, list) else np.fromiter(
            data, np.float64 if kind == "FP32" else np.int64, count=len(data))
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"input {name!r}: data must be a (nested) list of {what}") from None
    if array.dtype.kind not in ("iuf" if kind == "FP32" else "iu"):  # strings, bools, ragged
        raise BadRequest(f"input {name!r}: data must be a (nested) list of {what}")
    if kind == "UINT8" and array.size and (array.min() < 0 or array.max() > 255):
        raise BadRequest(f"input {name!r}: UINT8 data must be {what}, got values from "
                         f"{array.min()} to {array.max()}")
    if array.size != count:
        raise BadRequest(f"input {name!r}: {array.size} values for shape {shape} ({count})")
    return array.astype(DTYPES[kind], copy=False).reshape(shape)


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
