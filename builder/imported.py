"""What a model file's reader hands ``fold``: the net as IR layers, and the window arithmetic
that turns a framework's padding back into a blueprint's (``pad``, ``same``, ``rounding``).

No TensorFlow: the readers parse the files themselves (a ``.keras`` zip's ``config.json``, an
ONNX graph).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .errors import BlueprintError, Problem
from .shapes import effective_kernel, same_extent, same_pads, window_extent


@dataclass(frozen=True)
class Imported:
    """A chain of layers read from a model file; layer names are the file's own."""

    name: str
    input_shape: tuple[int, ...]    # channels last, no batch axis
    layers: tuple[ir.Layer, ...]
    source: str                     # the file, for messages
    kind: str                       # "Keras" or "ONNX"

    @property
    def classes(self) -> int:
        """Units of the classifier, the last layer."""
        last = self.layers[-1]
        assert isinstance(last, ir.Dense)
        return last.units


def breaks(source: str, name: str, what: str, message: str) -> BlueprintError:
    """The one-paragraph refusal for a layer the pattern grammar cannot express."""
    return BlueprintError(Problem(f"layer {name!r} ({what})", message), source)


@dataclass(frozen=True)
class Window:
    """A window layer's padding and rounding as a blueprint writes them, and its output."""

    padding: ir.Padding
    rounding: str | None
    spatial: tuple[int, ...]


def window(spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
           dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...] | str,
           refuse, ceil_first: bool = False) -> Window:
    """Blueprint padding for a window given ``same`` or explicit (before, after) pads.

    ``same`` at stride 1 with an odd window is written as the pads it adds (``pad: 1`` for
    3x3, as the VGG paper states it). Keras floors, so a window that does not tile gets
    ``rounding: floor``. A far side padded more than the near one is how ``keras_builder``
    writes ``rounding: ceil`` and how TensorFlow's ``same`` arrives in ONNX; where both
    readings fit, ``ceil_first`` (max pooling: -inf padding) takes ``rounding: ceil``.
    ``refuse(message)`` raises for pads no blueprint writes.

    >>> window((55,), (3,), (2,), (1,), ((0, 0),), None).spatial
    (27,)
    >>> window((110,), (3,), (2,), (1,), ((0, 1),), None, ceil_first=True)
    Window(padding='valid', rounding='ceil', spatial=(55,))
    >>> window((224, 224), (3, 3), (1, 1), (1, 1), "same", None).padding
    ((1, 1), (1, 1))
    """
    spans = [effective_kernel(k, d) for k, d in zip(kernel, dilation)]
    same = Window("same", None, tuple(same_extent(n, s).length for n, s in zip(spatial, stride)))
    if pads == "same" and all(s == 1 for s in stride) and all(n % 2 for n in spans):
        pads = tuple(((n - 1) // 2, (n - 1) // 2) for n in spans)  # as a person writes VGG: pad 1
    if pads == "same":
        return same
    if all(a == b for a, b in pads):
        ext = [window_extent(n, k, s, a, b, d)
               for n, k, s, d, (a, b) in zip(spatial, kernel, stride, dilation, pads)]
        padding = "valid" if not any(a for a, _ in pads) else tuple(pads)
        rounding = None if all(e.tiles for e in ext) else "floor"
        return Window(padding, rounding, tuple(e.length for e in ext))
    like_same = all(tuple(p) == same_pads(n, k, s, d)
                    for n, k, s, d, p in zip(spatial, kernel, stride, dilation, pads))
    if like_same and not ceil_first:
        return same
    out, why = [], ""
    for n, s, span, (a, b) in zip(spatial, stride, spans, pads):
        ext = window_extent(n, span, s, a, a, ceil=True)
        extra = max((ext.length - 1) * s + span - (n + 2 * a), 0)
        if b != a + extra and not why:
            why = (f"pads {a} before and {b} after on one axis: a blueprint pads both sides "
                   "alike (padding: 2, or 2x1 per axis), rounds a window up (rounding: ceil, "
                   f"which here would pad {a + extra} after) or pads as TensorFlow's 'same'; "
                   "pad the input equally instead")
        out.append(ext.length)
    if why and like_same:
        return same
    if why:
        refuse(why)
    padding = "valid" if not any(a for a, _ in pads) else tuple((a, a) for a, _ in pads)
    return Window(padding, "ceil", tuple(out))
