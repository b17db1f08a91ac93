"""A bounded look at a ModelInferRequest's protobuf wire format, before it is parsed.

Parsing holds the GIL, so every request would wait for a message of millions of tiny fields
(8M empty ``inputs`` in 16 MB: 1.9 s). This walks the top level and each input's fields in
Python, reading only tags and lengths, and stops at the first field over a bound: a legal
request has a few dozen fields, so the walk costs microseconds and an abusive one is refused
after at most ``MAX_FIELDS`` of them.
"""
from __future__ import annotations

from .protocol import MAX_INPUTS, BadRequest

MAX_FIELDS = 64  # top-level fields, and fields of one input or output entry
# field numbers of ModelInferRequest, InferInputTensor and InferRequestedOutputTensor
INPUTS, OUTPUTS, RAW = 5, 6, 7
SHAPE, CONTENTS = 3, 5
MAX_SHAPE_BYTES = 16 * 10  # 16 dimensions of at most 10 varint bytes
# Typed contents become a NumPy array one Python value at a time (np.fromiter: 6 ms for 262,144
# FP32 values here); raw_input_contents is read with np.frombuffer. So typed contents are
# bounded as JSON text is, and larger tensors go raw (as tritonclient sends them).
MAX_TYPED_BYTES = 1 << 20


def check_request(data: bytes) -> None:
    """400 (or 413 for typed contents over ``MAX_TYPED_BYTES``) unless ``data`` is, at its
    top level and in its inputs and outputs, well-formed within the bounds."""
    counts = {INPUTS: 0, OUTPUTS: 0, RAW: 0}
    for number, start, end in _fields(data, 0, len(data), "the request"):
        if number in counts:
            counts[number] += 1
            if counts[number] > MAX_INPUTS:
                what = {INPUTS: "inputs", OUTPUTS: "outputs", RAW: "raw_input_contents"}[number]
                raise BadRequest(f"the request has more than {MAX_INPUTS} {what} entries; this "
                                 "server's models take one input and give one output")
            if start is None:
                raise BadRequest("the request is not a valid ModelInferRequest: an input or "
                                 "output entry is not length-delimited")
            if number == INPUTS:
                _check_input(data, start, end, counts[INPUTS] - 1)
            elif number == OUTPUTS:
                for _ in _fields(data, start, end, f"outputs[{counts[OUTPUTS] - 1}]"):
                    pass


def _check_input(data: bytes, start: int, end: int, index: int) -> None:
    where = f"inputs[{index}]"
    for number, s, e in _fields(data, start, end, where):
        if s is None:
            continue
        if number == SHAPE and e - s > MAX_SHAPE_BYTES:
            raise BadRequest(f"{where}.shape has {e - s} bytes; a shape has a few dimensions")
        if number == CONTENTS and e - s > MAX_TYPED_BYTES:
            raise BadRequest(f"{where}.contents holds {e - s:,} bytes of typed values; this "
                             f"server reads at most {MAX_TYPED_BYTES:,} bytes as typed contents "
                             f"({MAX_TYPED_BYTES // 4:,} FP32 values; a larger read would hold "
                             "up every other request): send the tensor in raw_input_contents "
                             "(tritonclient does this by default)", 413)


def _fields(data: bytes, i: int, end: int, where: str):
    """(field number, start, end) of each field in ``data[i:end]``; start and end are None for
    a field that is not length-delimited. Refuses malformed data and more than MAX_FIELDS."""
    n = 0
    while i < end:
        n += 1
        if n > MAX_FIELDS:
            raise BadRequest(f"{where} has more than {MAX_FIELDS} protobuf fields; a "
                             "ModelInferRequest for one input has a few dozen at most")
        key, i = _varint(data, i, end, where)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise BadRequest(f"{where} is not a valid protobuf message (field number 0)")
        if kind == 0:
            _, i = _varint(data, i, end, where)
            yield number, None, None
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
            yield number, None, None
        elif kind == 2:
            length, i = _varint(data, i, end, where)
            if i + length > end:
                raise BadRequest(f"{where} is not a valid protobuf message (a field runs past "
                                 "its end)")
            yield number, i, i + length
            i += length
        else:
            raise BadRequest(f"{where} is not a valid protobuf message (wire type {kind})")
    if i > end:
        raise BadRequest(f"{where} is not a valid protobuf message (truncated)")


def _varint(data: bytes, i: int, end: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while i < end and shift < 64:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
    raise BadRequest(f"{where} is not a valid protobuf message (a truncated or overlong varint)")
