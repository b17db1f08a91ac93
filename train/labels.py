"""Checks every data source shares: its labels, its class names, and the ``--data`` error.

A leaf beside ``sources`` and ``tfrecords`` so that neither imports the other for them.
"""
from __future__ import annotations

import numpy as np

from cnnbp.contract.errors import DataError


def fail(message: str) -> DataError:
    """The ``DataError`` for ``message``, prefixed with the flag it is about (``--data``)."""
    return DataError(f"--data: {message}")


def class_names(values, where: str) -> tuple[str, ...]:
    """The data's own class names: one non-empty line each."""
    names = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                  for n in np.asarray(values).reshape(-1))
    bad = next((i for i, n in enumerate(names) if not n.strip() or n.splitlines() != [n]),
               None)
    if bad is not None or not names:
        raise fail(f"{where}: " + (f"name {bad} is {names[bad]!r}; each class name must be "
                                   "one non-empty line" if names else "names no classes"))
    return names


def check_labels(y: np.ndarray, where: str, limit: int | None, why: str = "") -> None:
    """Refuse the first label that is not a whole number in ``0 .. limit-1`` (any whole
    number from 0 when ``limit`` is None), named by its index in ``y``."""
    with np.errstate(invalid="ignore"):
        bad = y < 0
        if y.dtype.kind == "f":  # NaN compares false: isfinite catches it
            bad |= ~np.isfinite(y) | (y != np.floor(y))
        if limit is not None:
            bad |= y >= limit
    if not bad.any():
        return
    i = int(np.argmax(bad))
    value = y[i].item()
    valid = f"class indices 0..{limit - 1}" + (f" ({why})" if why else "") \
        if limit is not None else "class indices (whole numbers from 0)"
    what = f"which is not among the {valid}" if value == value and abs(value) != np.inf \
        and value == int(value) else f"but labels must be {valid}" + (
            ", and a fraction would be truncated" if value == value and abs(value) != np.inf
            else "")
    raise fail(f"{where}[{i}] is {value!r}, {what}; fix that label (and any after "
               "it) before training")


def listed(names, most: int = 30) -> str:
    """``names`` as ``[a, b, …]`` for a message, the first ``most`` of them and a count."""
    shown = ", ".join(names[:most])
    return f"[{shown}{f', … ({len(names) - most} more)' if len(names) > most else ''}]" \
        if names else ""
