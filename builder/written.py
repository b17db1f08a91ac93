"""An IR layer as a blueprint writes it: its token, its arguments in blueprint terms
(``kernel: 3``, ``padding: 1`` or ``same``, ``3x1``), and its inline call text with the
defaults left out, e.g. ``CONV(256, 5, pad=2, groups=2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import ir
from .tokens import TOKENS

_INLINE_NAMES = {"padding": "pad"}  # as the shipped blueprints write it inline

@dataclass(frozen=True)
class Written:
    """One layer as the blueprint writes it: its token and every argument's value."""
    token: str
    args: tuple[tuple[str, Any], ...]   # all arguments, defaults included, in table order

    def key(self) -> tuple:
        return (self.token, self.args)


def written(layer: ir.Layer) -> Written:
    """``layer`` in blueprint terms (``kernel: 3``, ``padding: 1`` or ``same``, ``3x1``).

    >>> written(ir.Pool("p", "avg", (2, 2), (2, 2), "valid", None)).args
    (('type', 'avg'), ('size', 2), ('stride', 2), ('padding', 'valid'), ('rounding', None))
    """
    if isinstance(layer, ir.Conv):
        return Written("CONV", (("filters", layer.filters), ("kernel", _size(layer.kernel)),
                                ("stride", _size(layer.stride)), ("padding", _pad(layer.padding)),
                                ("dilation", _size(layer.dilation)), ("groups", layer.groups),
                                ("bias", layer.bias), ("rounding", layer.rounding)))
    if isinstance(layer, ir.Pool):
        return Written("POOL", (("type", layer.mode), ("size", _size(layer.size)),
                                ("stride", _size(layer.stride)), ("padding", _pad(layer.padding)),
                                ("rounding", layer.rounding)))
    if isinstance(layer, ir.GlobalPool):
        return Written("GLOBAL_POOL", (("type", layer.mode),))
    if isinstance(layer, ir.Activation):
        return Written(layer.fn, () if layer.alpha is None else (("alpha", layer.alpha),))
    if isinstance(layer, ir.BatchNorm):
        return Written("BN", (("momentum", layer.momentum), ("epsilon", layer.epsilon)))
    if isinstance(layer, ir.LRN):
        return Written("LRN", (("size", layer.size), ("alpha", layer.alpha),
                               ("beta", layer.beta), ("bias", layer.bias)))
    if isinstance(layer, ir.Dropout):
        return Written("DROPOUT", (("rate", layer.rate),))
    if isinstance(layer, ir.Flatten):
        return Written("FLATTEN", ())
    assert isinstance(layer, ir.Dense)
    if layer.softmax:
        return Written("SOFTMAX", (("bias", layer.bias),))
    return Written("FC", (("units", layer.units), ("bias", layer.bias)))


def _size(dims: tuple[int, ...]) -> int | str:
    return dims[0] if len(set(dims)) == 1 else "x".join(map(str, dims))


def _pad(padding: ir.Padding) -> int | str:
    if isinstance(padding, str):
        return padding
    return _size(tuple(a for a, _ in padding))


def is_default(token: str, key: str, value: Any, args: dict) -> bool:
    """Whether writing ``key: value`` can be left out (POOL's stride defaults to its size)."""
    if token == "SOFTMAX":
        return value is True
    if token == "POOL" and key == "stride":
        return value == args.get("size")
    if token == "CONV" and key in ("filters", "kernel") or token == "POOL" and key == "size":
        return False  # a person states these
    default = TOKENS[token].arg(key).default
    return value == default or (key == "padding" and value == 0 and default == "valid")


def call(w: Written, given: dict | None = None, owned: frozenset = frozenset()) -> str:
    """Inline text of ``w``: every argument that differs from what ``given`` (the token's
    ``layers:`` entry) or the default supplies, except the ``owned`` lists ``layers:`` holds."""
    args, given = dict(w.args), given or {}
    if w.token == "SOFTMAX":
        return "FC(bias=false)-SOFTMAX" if not args["bias"] else "SOFTMAX"
    shown = [(k, v) for k, v in w.args if k not in owned and
             (given[k] != v if k in given else not is_default(w.token, k, v, args))]
    positional, parts = list(TOKENS[w.token].positional), []
    for k, v in shown:
        if positional and positional[0] == k:
            positional.pop(0)
            parts.append(_text(v))
        else:
            positional = []
            parts.append(f"{_INLINE_NAMES.get(k, k)}={_text(v)}")
    return f"{w.token}({', '.join(parts)})" if parts else w.token


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)
