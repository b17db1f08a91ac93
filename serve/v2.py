"""The Open Inference Protocol (KServe V2) infer request as pydantic models, as KServe's
``v2_endpoints.py`` validates it: a parsed JSON document → ``InferenceRequest``, or a 400 that
names the field (``inputs[0].parameters.binary_data_size``) and what it got.

Only the envelope is checked here, the same for every model; what depends on the model (its
input names, datatype and shape, the row cap, the class count) is checked in protocol.py. The
envelope costs about 3 microseconds a request; the tensor values (``data``) are not walked by
pydantic but read by NumPy, after their count is checked against the shape: for one 224x224x3
image nested per its shape, pydantic's ``list[list[list[list[float]]]]`` took 21.5 ms and
``np.asarray`` 5.9 ms, both holding the GIL (bench/v2_validation.py, docs/benchmarks.md).
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .errors import BadRequest, short_repr

# a JSON whole number: strict, so true/false and 1.5 or "1" are refused, not converted
Whole = Annotated[StrictInt, Field(ge=0)]
MAX_ENTRIES = 8  # inputs or outputs: more are refused before the rest are looked at
SHAPE = ('an infer request is {"inputs": [{"name", "datatype", "shape", and "data" or '
         '"parameters": {"binary_data_size"}}], "outputs": [{"name", "parameters"}]}')


# pydantic's wording of the usual mistakes, in the protocol's terms
MESSAGES = {"model_type": "must be a JSON object", "dict_type": "must be a JSON object",
            "int_type": "must be a whole number", "greater_than_equal": "must be >= 0",
            "string_type": "must be a string", "list_type": "must be a list",
            "missing": "is missing"}


class _Open(BaseModel):
    # fields of later protocol versions and extensions are kept, not refused
    model_config = ConfigDict(extra="allow", frozen=True)


class InputParameters(_Open):
    """An input's parameters: ``binary_data_size``, the bytes of its binary tensor data."""

    binary_data_size: Optional[Whole] = None


class RequestInput(_Open):
    """One input tensor: name, datatype, shape, and its values inline or as binary data."""

    name: StrictStr
    datatype: StrictStr
    shape: Annotated[list[Whole], Field(min_length=1, max_length=16)]
    parameters: Optional[InputParameters] = None
    data: Any = None  # read by NumPy (protocol._values), after its length is checked


class OutputParameters(_Open):
    """A requested output's parameters: ``binary_data``, and Triton's ``classification`` (its
    bound, the model's classes, is checked in protocol.py)."""

    binary_data: Any = None
    classification: Any = None
    class_count: Any = None


class RequestOutput(_Open):
    """One requested output, by name."""

    name: Optional[StrictStr] = None
    parameters: Optional[OutputParameters] = None


class RequestParameters(_Open):
    """The request's parameters: ``binary_data_output`` asks for every output as binary."""

    binary_data_output: Any = None


class InferenceRequest(_Open):
    """A V2 infer request's JSON part."""

    id: Any = None  # any JSON value, answered as its string
    parameters: Optional[RequestParameters] = None
    inputs: Annotated[list[RequestInput], Field(min_length=1, max_length=MAX_ENTRIES)]
    outputs: Optional[Annotated[list[RequestOutput], Field(max_length=MAX_ENTRIES)]] = None


def infer_request(doc) -> InferenceRequest:
    """``doc`` (a parsed JSON document) as an ``InferenceRequest``; a 400 ``BadRequest`` naming
    the first wrong field otherwise. The caller bounds the number of inputs and outputs first:
    pydantic validates every entry before it counts them (60,000 inputs: 250 ms)."""
    try:
        return InferenceRequest.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = MESSAGES.get(error["type"]) or error["msg"][0].lower() + error["msg"][1:]
        got = "" if error["type"] == "missing" else f", got {short_repr(error['input'])}"
        raise BadRequest(f"{where.lstrip('.') or 'the request'}: {message}{got}; {SHAPE}") \
            from None
