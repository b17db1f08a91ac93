"""The blueprint vocabulary: every token, its arguments, their types and defaults.

One table serves the pattern's inline arguments, the ``layers:`` section of a blueprint,
the JSON Schema's enumerations and the did-you-mean suggestions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()  # marks an argument with no default


@dataclass(frozen=True)
class Arg:
    """One argument of a token.

    ``kind`` is one of: int, float, bool, size (an int or ``AxB``), padding (``valid``,
    ``same``, an int or ``AxB``), choice (one of ``choices``).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Token:
    """A pattern token (CONV, POOL, FC, ...) and the arguments it takes."""
    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    positional: tuple[str, ...] = ()  # order of positional inline arguments

    def arg(self, key: str) -> Arg | None:
        """The argument named ``key`` or one of its aliases; None when it has none."""
        for a in self.args:
            if key == a.name or key in a.aliases:
                return a
        return None


_ROUNDING = Arg("rounding", "choice", None, ("floor", "ceil"),
                doc="accept a window that does not tile its input, rounding down or up")

_ACTIVATIONS = ("RELU", "LEAKY_RELU", "ELU", "TANH", "SIGMOID", "GELU", "SWISH")

TOKENS: dict[str, Token] = {t.name: t for t in (
    Token("INPUT", "the input shape, e.g. INPUT(32x32x3); only as the first token",
          (Arg("shape", "shape"),), ("shape",)),
    Token("CONV", "convolution, 1-D or 2-D by the input's rank", (
        Arg("filters", "int", minimum=1, aliases=("f",), doc="number of filters"),
        Arg("kernel", "size", 3, minimum=1, aliases=("k",), doc="kernel size, 5 or 5x5"),
        Arg("stride", "size", 1, minimum=1, aliases=("s",)),
        Arg("padding", "padding", "valid", aliases=("p", "pad"),
            doc="valid, same, or zeros added on each side (2 or 2x1)"),
        Arg("dilation", "size", 1, minimum=1, aliases=("d",)),
        Arg("groups", "int", 1, minimum=1, aliases=("g",)),
        Arg("bias", "bool", True),
        _ROUNDING,
    ), ("filters", "kernel")),
    Token("POOL", "max or average pooling", (
        Arg("type", "choice", "max", ("max", "avg")),
        Arg("size", "size", 2, minimum=1, aliases=("k", "kernel")),
        Arg("stride", "size", None, minimum=1, aliases=("s",), doc="defaults to size"),
        Arg("padding", "padding", "valid", aliases=("p", "pad")),
        _ROUNDING,
    ), ("size", "stride")),
    Token("GLOBAL_POOL", "global max or average pooling over all positions",
          (Arg("type", "choice", "avg", ("max", "avg")),)),
    Token("RELU", "rectified linear unit"),
    Token("LEAKY_RELU", "leaky ReLU", (Arg("alpha", "float", 0.01, minimum=0),), ("alpha",)),
    Token("ELU", "exponential linear unit", (Arg("alpha", "float", 1.0, minimum=0),), ("alpha",)),
    Token("TANH", "hyperbolic tangent"),
    Token("SIGMOID", "logistic sigmoid"),
    Token("GELU", "Gaussian error linear unit"),
    Token("SWISH", "swish / SiLU"),
    Token("BN", "batch normalization over channels", (
        Arg("momentum", "float", 0.99, minimum=0, maximum=1),
        Arg("epsilon", "float", 1e-3, minimum=0),
    )),
    Token("LRN", "local response normalization across channels (AlexNet, VGG A-LRN)", (
        Arg("size", "int", 5, minimum=1, aliases=("n",), doc="channels in the window (odd)"),
        Arg("alpha", "float", 1e-4, minimum=0),
        Arg("beta", "float", 0.75, minimum=0),
        Arg("bias", "float", 2.0, minimum=0, aliases=("k",)),
    ), ("size",)),
    Token("DROPOUT", "dropout while training",
          (Arg("rate", "float", 0.5, minimum=0, maximum=0.99),), ("rate",)),
    Token("FLATTEN", "flatten to a vector (implicit before the first FC)"),
    Token("FC", "fully connected layer", (
        Arg("units", "int", REQUIRED, minimum=1, aliases=("u",)),
        Arg("bias", "bool", True),
    ), ("units",)),
    Token("SOFTMAX", "the classifier: softmax over `classes` outputs; the FC before it, "
          "or an implicit one, has `classes` units"),
)}

ACTIVATIONS = frozenset(_ACTIVATIONS)


def edit_distance(a: str, b: str) -> int:
    """Edits between ``a`` and ``b``: a character inserted, deleted, replaced, or two neighbours
    swapped (optimal string alignment), so a typed transposition counts once.

    >>> edit_distance("vgg61", "vgg16"), edit_distance("vgg61", "vgg19")
    (1, 2)
    """
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, row = row, current
    return row[-1]


def closest(word: str, choices: Any) -> str | None:
    """The choice fewest edits away (case ignored), if it is within a third of the word's
    length (at least one edit); among equals, the one sharing the most letters with ``word``
    (``vgg61``: ``vgg16``, not ``vgg11``), then the first in ``choices``. A word of one or two
    letters is one edit from any other such word, so there the choice must also share a
    letter with it (``NN``: ``N``; ``Z``: nothing).

    >>> closest("Z", ["K", "M", "N"]), closest("m", ["K", "M", "N"]), closest("NN", ["K", "N"])
    (None, 'M', 'N')
    """
    from collections import Counter
    limit, letters = max(1, len(word) // 3), Counter(word.lower())
    scored = [(edit_distance(word.lower(), str(c).lower()),
               -sum((letters & Counter(str(c).lower())).values()), i, str(c))
              for i, c in enumerate(choices)]
    best = min(scored, default=None)
    if best is None or best[0] > limit or (len(word) <= 2 and best[0] and not best[1]):
        return None
    return best[3]


def suggest(word: str, choices: Any) -> str:
    """Return `` (did you mean X?)`` for the closest choice, or an empty string.

    >>> suggest("COVN", TOKENS), suggest("vgg61", ["vgg11", "vgg16", "vgg19"])
    (' (did you mean CONV?)', ' (did you mean vgg16?)')
    """
    close = closest(word, choices)
    return f" (did you mean {close}?)" if close else ""
