"""Pattern expression text → syntax tree.

The seeds' notation parses as written::

    [(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX

Grammar: ``-`` sequences items; ``( )`` and ``[ ]`` group; ``*n`` or ``*NAME`` repeats;
``?`` or ``?FLAG`` makes an item optional (a flag, named after the token or given after
the ``?``, decides); ``TOKEN(arg, key=value)`` passes inline arguments; ``5x5`` is a size.
A pattern longer than ``MAX_PATTERN_CHARS``, nested deeper than ``MAX_NESTING`` or with a
whole number beyond 64 bits is refused before it is parsed or built.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Union

from .errors import BlueprintError, Problem
from .source import MAX_INT

MAX_PATTERN_CHARS = 10_000   # lark parses ~100 KB/s; the classic nets need under 100
MAX_NESTING = 100            # brackets inside brackets; the tree walks recurse per level

_GRAMMAR = r"""
?start: seq
seq: item ("-" item)*
item: atom repeat? optional?
repeat: "*" (INT | NAME)
optional: "?" NAME?
?atom: call | "(" seq ")" | "[" seq "]"
call: NAME args?
args: "(" [arg ("," arg)*] ")"
arg: NAME "=" value  -> kwarg
   | value           -> posarg
?value: SIZE -> size
      | SIGNED_NUMBER -> number
      | NAME -> word
SIZE.2: /\d+(x\d+)+/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
%import common.INT
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""


@dataclass(frozen=True)
class Call:
    """A token with its inline arguments, e.g. ``CONV(64, 3x3, stride=2)``."""

    token: str
    positional: tuple
    keywords: tuple  # ((key, value), ...)
    column: int


@dataclass(frozen=True)
class Seq:
    """Items joined by ``-``, in order."""
    items: tuple


@dataclass(frozen=True)
class Repeat:
    """``(body)*count``: the count a number or a variable's name."""
    body: "Node"
    count: Union[int, str]
    column: int


@dataclass(frozen=True)
class Optional:
    """``(body)?FLAG``: present when the variable ``flag`` is true."""
    body: "Node"
    flag: str
    column: int


Node = Union[Call, Seq, Repeat, Optional]


@dataclass(frozen=True)
class Size:
    """An ``AxBxC`` literal."""

    dims: tuple[int, ...]

    def __str__(self) -> str:
        return "x".join(map(str, self.dims))


@dataclass(frozen=True)
class Word:
    """A bare identifier used as a value: a variable name or a choice like ``avg``."""

    name: str


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark
    # cache=True keeps the LALR tables in the temp dir (keyed by grammar and lark version):
    # building them costs ~65 ms, a third of `cnnbp check`.
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False,
                cache=True)


def parse(text: str, path: str = "pattern") -> Node:
    """Parse a pattern expression; raise BlueprintError with a caret on a syntax error."""
    from lark import Token as LarkToken
    from lark import Tree
    from lark.exceptions import UnexpectedInput

    _check_size(text, path)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        at_end = getattr(getattr(exc, "token", None), "type", "") == "$END" or \
            type(exc).__name__ == "UnexpectedEOF"
        col = len(text) + 1 if at_end else (getattr(exc, "column", 1) or 1)
        got = "end of pattern" if at_end else text[col - 1:col]
        raise BlueprintError(Problem(
            path, f"syntax error at column {col} (unexpected {got if at_end else repr(got)}): "
            f"{text!r} — write tokens joined by '-', groups in ( ) or [ ], "
            "repeats as *N, optional items as X?")) from None

    def whole(text: str, column: int) -> int:
        # int() refuses more than 4,300 digits, and no size needs more than 64 bits.
        digits = text.lstrip("-").lstrip("0")
        if len(digits) > 19 or (digits and int(digits) > MAX_INT):
            shown = text if len(text) <= 40 else f"{text[:20]}… ({len(digits):,} digits)"
            raise BlueprintError(Problem(path, f"column {column}: {shown} does not fit in 64 "
                                         f"bits; whole numbers may be at most {MAX_INT:,} in "
                                         "size"))
        return int(text)

    def value(t):
        tok = t.children[0]
        if t.data == "size":
            return Size(tuple(whole(x, tok.column) for x in tok.split("x")))
        if t.data == "number":
            s = str(tok)
            return whole(s, tok.column) if s.lstrip("-").isdigit() else float(s)
        if str(tok) in ("true", "false"):
            return str(tok) == "true"
        return Word(str(tok))

    def build(t) -> Node:
        if t.data == "seq":
            items = tuple(build(c) for c in t.children)
            return items[0] if len(items) == 1 else Seq(items)
        if t.data == "item":
            node = build(t.children[0])
            for post in t.children[1:]:
                col = post.meta.column
                if post.data == "repeat":
                    tok = post.children[0]
                    count = whole(str(tok), tok.column) if tok.type == "INT" else str(tok)
                    node = Repeat(node, count, col)
                else:
                    flag = str(post.children[0]) if post.children else _flag_name(node)
                    if flag is None:
                        raise BlueprintError(Problem(path, f"column {col}: an optional group "
                                                     "needs a flag name after '?', e.g. "
                                                     "(BN-RELU)?USE_BN"))
                    node = Optional(node, flag, col)
            return node
        if t.data == "call":
            name = t.children[0]
            pos, kw = [], []
            if len(t.children) > 1:
                for a in t.children[1].children:
                    if a.data == "kwarg":
                        kw.append((str(a.children[0]), value(a.children[1])))
                    else:
                        pos.append(value(a.children[0]))
            return Call(str(name), tuple(pos), tuple(kw), name.column)
        raise AssertionError(t.data)  # grammar and builder out of step

    assert isinstance(tree, Tree) and not isinstance(tree, LarkToken)
    return build(tree)


def _check_size(text: str, path: str) -> None:
    """Refuse a pattern nested too deep to walk or too long to parse quickly."""
    depth = 0
    for column, char in enumerate(text, 1):
        if char in "([":
            depth += 1
            if depth > MAX_NESTING:
                raise BlueprintError(Problem(path, f"column {column}: brackets nest more than "
                                             f"{MAX_NESTING} levels deep; the limit is "
                                             f"{MAX_NESTING}"))
        elif char in ")]":
            depth = max(depth - 1, 0)
    if len(text) > MAX_PATTERN_CHARS:
        raise BlueprintError(Problem(path, f"is {len(text):,} characters long; the limit is "
                                     f"{MAX_PATTERN_CHARS:,} — write repeated parts once, "
                                     "with *N"))


def _flag_name(node: Node) -> str | None:
    return node.token if isinstance(node, Call) else None
