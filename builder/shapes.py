"""Shape arithmetic as pure functions: one formula for validation, tables and FC sizing.

The Keras builder must agree with these (tests/builder/test_keras_agreement.py holds
them together).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Extent:
    """Output length of one spatial axis, with the arithmetic that produced it.

    ``exact`` is the unrounded quotient ``(n + pads - k_eff)/s + 1``; ``length`` is the
    rounded size a framework would produce.
    """

    length: int
    exact: Fraction
    formula: str

    @property
    def tiles(self) -> bool:
        """Whether the windows tile the input exactly (no row or column left over)."""
        return self.exact.denominator == 1


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel.

    >>> effective_kernel(3, 2)
    5
    """
    return dilation * (kernel - 1) + 1


def window_extent(n: int, kernel: int, stride: int, pad_before: int = 0,
                  pad_after: int = 0, dilation: int = 1, ceil: bool = False) -> Extent:
    """Output length of a sliding window: ``(N - F + 2P)/S + 1``.

    >>> window_extent(7, 3, 1).length
    5
    >>> window_extent(7, 3, 3).formula
    '(7 - 3)/3 + 1 = 2.33'
    >>> window_extent(7, 3, 3).tiles
    False
    >>> window_extent(32, 5, 1, 2, 2).length
    32
    >>> window_extent(110, 3, 2, ceil=True).length
    55
    """
    span = effective_kernel(kernel, dilation)
    padded = n + pad_before + pad_after
    exact = Fraction(padded - span, stride) + 1
    length = math.ceil(exact) if ceil else math.floor(exact)
    if ceil and exact.denominator != 1 and (length - 1) * stride >= n + pad_before:
        # A window added by rounding up must start inside the input or its left padding
        # (the Caffe/PyTorch rule).
        length -= 1
    pads = ""
    if pad_before or pad_after:
        pads = f" + {2 * pad_before}" if pad_before == pad_after else \
            f" + {pad_before} + {pad_after}"
    formula = f"({n}{pads} - {span})/{stride} + 1 = {_show(exact)}"
    return Extent(length, exact, formula)


def same_extent(n: int, stride: int) -> Extent:
    """Output length for ``same`` padding: ``ceil(N/S)``.

    >>> same_extent(7, 2).length
    4
    """
    exact = Fraction(n, stride)
    return Extent(math.ceil(exact), exact, f"ceil({n}/{stride}) = {math.ceil(exact)}")


def same_pads(n: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Padding (before, after) that ``same`` adds, as TensorFlow and Keras place it.

    >>> same_pads(224, 3, 2)
    (0, 1)
    """
    span = effective_kernel(kernel, dilation)
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + span - n, 0)
    return total // 2, total - total // 2


def _show(q: Fraction) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    return f"{float(q):.2f}"
