"""Raw blueprint values → typed values for one token argument, with precise messages."""
from __future__ import annotations

from typing import Any

from .pattern import Size, Word
from .tokens import Arg


class ValueProblem(ValueError):
    """A value of the wrong type or range; the caller adds the key path."""


def convert(arg: Arg, raw: Any, rank: int) -> Any:
    """Check ``raw`` against ``arg`` and return its typed form.

    Sizes become tuples of ``rank`` ints; explicit padding becomes ((before, after), ...).

    >>> from cnnbp.builder.tokens import TOKENS
    >>> convert(TOKENS["CONV"].arg("kernel"), "5x5", 2)
    (5, 5)
    >>> convert(TOKENS["CONV"].arg("padding"), 2, 2)
    ((2, 2), (2, 2))
    """
    if isinstance(raw, Word):
        raw = raw.name
    kind = arg.kind
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueProblem(f"must be a whole number, got {raw!r}")
        return _ranged(arg, raw)
    if kind == "float":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueProblem(f"must be a number, got {raw!r}")
        return _ranged(arg, float(raw))
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueProblem(f"must be true or false, got {raw!r}")
        return raw
    if kind == "choice":
        if raw not in arg.choices:
            raise ValueProblem(f"must be one of {', '.join(arg.choices)}, got {raw!r}")
        return raw
    if kind == "size":
        return tuple(_ranged(arg, d) for d in _size(raw, rank))
    if kind == "padding":
        if raw in ("valid", "same"):
            return raw
        try:
            dims = _size(raw, rank)
        except ValueProblem:
            raise ValueProblem(f"must be valid, same, or zeros per side (2 or 2x1), "
                               f"got {raw!r}") from None
        if any(d < 0 for d in dims):
            raise ValueProblem(f"padding must be >= 0, got {raw!r}")
        return tuple((d, d) for d in dims)
    if kind == "shape":
        dims = _dims(raw)
        if not 2 <= len(dims) <= 3 or any(d < 1 for d in dims):
            raise ValueProblem(f"must be LENGTHxCHANNELS or HEIGHTxWIDTHxCHANNELS with sizes "
                               f">= 1, e.g. 32x32x3 or 40x1, got {raw!r}")
        return dims
    raise AssertionError(f"unknown argument kind {kind}")


def _ranged(arg: Arg, v):
    if arg.minimum is not None and v < arg.minimum:
        raise ValueProblem(f"must be >= {arg.minimum:g}, got {v!r}")
    if arg.maximum is not None and v > arg.maximum:
        raise ValueProblem(f"must be <= {arg.maximum:g}, got {v!r}")
    return v


def _dims(raw: Any) -> tuple[int, ...]:
    if isinstance(raw, Size):
        return raw.dims
    if isinstance(raw, list) and raw and \
            all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        return tuple(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return (raw,)
    if isinstance(raw, str):
        parts = raw.lower().split("x")
        if all(p.strip().isdigit() for p in parts):
            return tuple(int(p) for p in parts)
    raise ValueProblem(f"must be a size like 3 or 3x3, got {raw!r}")


def _size(raw: Any, rank: int) -> tuple[int, ...]:
    if isinstance(raw, list):
        raise ValueProblem(f"must be a size like 3 or 3x3, got the list {raw!r} "
                           "(lists give one value per repetition)")
    dims = _dims(raw)
    if len(dims) == 1:
        return dims * rank
    if len(dims) != rank:
        raise ValueProblem(f"has {len(dims)} dimensions ({raw}) but the input has {rank} "
                           f"spatial dimension(s)")
    return dims
