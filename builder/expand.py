"""Syntax tree + variables + layer defaults → a flat list of token occurrences.

Repeats unroll, optional items are kept or dropped by their flag, and every value that
varies by repetition is picked for its occurrence. A list nests one level per enclosing
repeat, outermost first; a scalar applies to every repetition. So with
``[(CONV-RELU)*N-POOL]*M``, ``filters: [64, 128]`` gives stage 1 64 filters and stage 2
128, and ``N: [2, 3]`` gives stage 1 two convolutions and stage 2 three. Before anything
is unrolled, the size is counted from the repeat counts, and a pattern over ``MAX_LAYERS``
layers or ``MAX_STEPS`` steps is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import BlueprintError, Problem
from .pattern import Call, Node, Optional, Repeat, Seq, Word
from .tokens import TOKENS, suggest

MAX_LAYERS = 10_000    # tokens after unrolling; the classic nets have under 50
MAX_STEPS = 100_000    # items the unrolling visits, counting repeats of bodies left empty


@dataclass(frozen=True)
class Occurrence:
    """One token of the unrolled pattern with its raw values picked for this repetition.

    ``values`` maps argument name → (value, source) where source is the key path that
    supplied it (``pattern: CONV(...)`` or ``layers.CONV.filters``).
    """

    token: str
    values: Mapping[str, tuple[Any, str]]
    origin: str


@dataclass(frozen=True)
class _Level:
    label: str  # the repeat's variable name, or its literal count
    count: int
    index: int


class _Expander:
    def __init__(self, variables: Mapping[str, Any], layer_defaults: Mapping[str, Mapping]):
        self.vars = variables
        self.defaults = layer_defaults
        self.problems: list[Problem] = []
        self.out: list[Occurrence] = []
        self.switched_on: list[str] = []  # flags of the optional groups being walked
        self.notes: list[str] = []

    def fail(self, path: str, message: str) -> None:
        p = Problem(path, message)
        if p not in self.problems:
            self.problems.append(p)

    # -- values that vary by repetition ------------------------------------------------
    def pick(self, value: Any, source: str, stack: tuple[_Level, ...]) -> Any:
        for level in stack:
            if not isinstance(value, list):
                return value
            if len(value) != level.count:
                self.fail(source, f"has {len(value)} values, but the repeat *{level.label} "
                          f"that encloses it runs {level.count} times; give one value per "
                          "repetition or a single value for all")
                return None
            value = value[level.index]
        if isinstance(value, list):
            depth = "no repeat encloses it" if not stack else \
                f"only {len(stack)} repeat(s) enclose it " \
                f"({', '.join('*' + level.label for level in stack)})"
            self.fail(source, f"is a list nested one level too deep: {depth}")
            return None
        return value

    def variable(self, name: str, column: int, stack: tuple[_Level, ...]) -> Any:
        if name not in self.vars:
            hint = suggest(name, self.vars)
            self.fail("pattern", f"column {column}: variable {name} is unbound{hint}; bind it "
                      f"under `vars:` or on the command line with --set {name}=...")
            return None
        return self.pick(self.vars[name], f"vars.{name}", stack)

    # -- tree walk ---------------------------------------------------------------------
    def walk(self, node: Node, stack: tuple[_Level, ...]) -> None:
        if isinstance(node, Seq):
            for item in node.items:
                self.walk(item, stack)
        elif isinstance(node, Repeat):
            self.repeat(node, stack)
        elif isinstance(node, Optional):
            flag = self.variable(node.flag, node.column, stack)
            if flag is None:
                return
            if isinstance(flag, str) and flag.lower() in FLAG_WORDS:  # --set POOL=yes
                flag = FLAG_WORDS[flag.lower()]
            if not isinstance(flag, bool):
                self.fail(f"vars.{node.flag}", f"is the flag of the optional at column "
                          f"{node.column}; it must be true or false (or yes/no, on/off), got "
                          f"{flag!r}")
            elif flag:
                self.switched_on.append(node.flag)
                self.walk(node.body, stack)
                self.switched_on.pop()
        else:
            self.call(node, stack)

    def repeat(self, node: Repeat, stack: tuple[_Level, ...]) -> None:
        count = node.count
        label = str(count)
        if isinstance(count, str):
            count = self.variable(count, node.column, stack)
            if count is None:
                return
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self.fail(f"vars.{label}", f"is the repeat count at column {node.column}; it "
                          f"must be a whole number >= 0, got {count!r}")
                return
        for i in range(count):
            self.walk(node.body, stack + (_Level(label, count, i),))

    def call(self, node: Call, stack: tuple[_Level, ...]) -> None:
        token = TOKENS.get(node.token.upper())  # conv and CONV are the same token
        if token is None:
            alias = ALIASES.get(node.token.upper().replace("_", ""))
            hint = f" ({alias} is this tool's name for it)" if alias else \
                suggest(node.token.upper(), TOKENS)
            self.fail("pattern", f"column {node.column}: unknown token {node.token}{hint}; "
                      f"known tokens: {', '.join(TOKENS)}")
            return
        origin = f"column {node.column}"
        if stack:
            origin += ", " + ", ".join(f"repetition {level.index + 1} of *{level.label}"
                                       for level in reversed(stack))
        for flag in self.switched_on:  # a layer that exists only because a flag is on
            origin += f", in the group ?{flag} that {flag}=true switches on ({flag}=false drops it)"
        values: dict[str, tuple[Any, str]] = {}
        for key, raw in (self.defaults.get(token.name) or {}).items():
            values[key] = (raw, f"layers.{token.name}.{key}")
        inline = f"pattern column {node.column}: {node.token}(...)"
        positional = list(token.positional)
        for raw in node.positional:
            arg = self._choice_for(token, raw)
            if arg is None:
                if not positional:
                    self.fail("pattern", f"column {node.column}: {node.token} takes "
                              f"{len(token.positional) or 'no'} positional argument(s)"
                              + (f" ({', '.join(token.positional)})" if token.positional else "")
                              + f"; got {_show(raw)} too many — name it, e.g. key=value")
                    continue
                arg = positional.pop(0)
            elif arg in positional:
                positional.remove(arg)
            values[arg] = (raw, inline)
        for key, raw in node.keywords:
            arg = token.arg(key)
            if arg is None:
                names = [a.name for a in token.args]
                hint = " (an activation is a token of its own: write CONV(...)-RELU)" \
                    if key == "activation" else suggest(key, names)
                self.fail("pattern", f"column {node.column}: {node.token} has no argument "
                          f"{key!r}{hint}; valid: {', '.join(names) or 'none'}")
                continue
            values[arg.name] = (raw, inline)
        picked = {}
        for key, (raw, source) in values.items():
            arg = token.arg(key)
            if isinstance(raw, list) and stack and arg is not None and arg.kind == "size" \
                    and len(raw) in (2, 3) and all(type(v) is int for v in raw):
                # [1, 7]: one value per repetition here, but a 1x7 kernel to a Keras user
                note = (f"{source} {raw} is read as one value per repetition of "
                        f"*{stack[0].label} ({', then '.join(map(str, raw))}); for a single "
                        f"{'x'.join(map(str, raw))} {key}, write {'x'.join(map(str, raw))}")
                if note not in self.notes:
                    self.notes.append(note)
            if isinstance(raw, Word) and self._is_choice(token, key, raw):
                raw = Word(raw.name.lower())  # padding=SAME means same
            elif isinstance(raw, Word):
                raw = self.variable(raw.name, node.column, stack)
                source = f"vars.{getattr(values[key][0], 'name', key)}"
            picked[key] = (self.pick(raw, source, stack), source)
        self.out.append(Occurrence(token.name, picked, origin))

    @staticmethod
    def _choice_for(token, raw) -> str | None:
        if isinstance(raw, Word):
            word = raw.name.lower()  # a choice is a choice in any case: SAME, Same, same
            for a in token.args:
                if word in a.choices or (a.kind == "padding" and word in ("valid", "same")):
                    return a.name
        return None

    @staticmethod
    def _is_choice(token, key, raw: Word) -> bool:
        arg = token.arg(key)
        word = raw.name.lower()
        return arg is not None and (word in arg.choices
                                    or word in ("valid", "same", "true", "false"))


class _Size:
    """How much unrolling would produce, computed without unrolling.

    A repeat multiplies its body's size unless a value that varies by repetition decides a
    count or flag inside it; only then are its repetitions counted one by one, and those
    are bounded by the length of the list that varies.
    """

    def __init__(self, variables: Mapping[str, Any]):
        self.vars = variables
        self.biggest: Repeat | None = None  # the repeat with the largest count, to name it
        self.biggest_count = 0
        self.stopped = False  # counting stopped early: the totals are lower bounds

    def value(self, name: str, stack: tuple[_Level, ...]) -> tuple[Any, set[int]]:
        """The variable as ``_Expander.pick`` would pick it, and the levels it varies by."""
        value, varies = self.vars.get(name), set()
        for depth, level in enumerate(stack):
            if not isinstance(value, list):
                return value, varies
            if len(value) != level.count:
                return None, varies  # the expander reports the mismatch
            varies.add(depth)
            value = value[level.index]
        return (None if isinstance(value, list) else value), varies

    def size(self, node: Node, stack: tuple[_Level, ...]) -> tuple[int, int, set[int]]:
        """(tokens, items visited, stack depths whose index changed the answer)."""
        if isinstance(node, Call):
            return int(node.token != "INPUT"), 1, set()
        if isinstance(node, Seq):
            tokens, steps, varies = 0, 1, set()
            for item in node.items:
                t, s, v = self.size(item, stack)
                tokens, steps, varies = tokens + t, steps + s, varies | v
            return tokens, steps, varies
        if isinstance(node, Optional):
            flag, varies = self.value(node.flag, stack)
            if flag is not True:
                return 0, 1, varies
            tokens, steps, inner = self.size(node.body, stack)
            return tokens, steps + 1, varies | inner
        count, varies = node.count, set()
        if isinstance(count, str):
            count, varies = self.value(count, stack)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                return 0, 1, varies
        if count > self.biggest_count:
            self.biggest, self.biggest_count = node, count
        if count == 0:
            return 0, 1, varies
        depth = len(stack)
        tokens, steps, inner = self.size(node.body, stack + (_Level("", count, 0),))
        if depth not in inner:
            return count * tokens, 1 + count * steps, varies | inner
        for i in range(1, count):
            if steps > MAX_STEPS:  # enough to refuse; the rest cannot make it smaller
                self.stopped = True
                break
            t, s, v = self.size(node.body, stack + (_Level("", count, i),))
            tokens, steps, inner = tokens + t, steps + s, inner | v
        return tokens, steps + 1, varies | (inner - {depth})


def _check_size(tree: Node, variables: Mapping[str, Any]) -> None:
    """Refuse a pattern that would unroll to more than MAX_LAYERS tokens, before unrolling."""
    sizer = _Size(variables)
    tokens, steps, _ = sizer.size(tree, ())
    if tokens <= MAX_LAYERS and steps <= MAX_STEPS:
        return
    node, path, why = sizer.biggest, "pattern", ""
    if node is not None:
        label = f"*{node.count} " if isinstance(node.count, str) else ""
        why = (f" (the repeat {label}at pattern column {node.column} runs "
               f"{_amount(sizer.biggest_count)} times)")
        if label:
            path = f"vars.{node.count}"
    at_least = "more than " if sizer.stopped else ""
    if tokens > MAX_LAYERS:
        raise BlueprintError(Problem(path, f"the pattern unrolls to {at_least}{_amount(tokens)} "
                                     f"layers; the limit is {MAX_LAYERS:,}{why}; lower the "
                                     "repeat counts"))
    raise BlueprintError(Problem(path, f"unrolling the pattern would take {at_least}"
                                 f"{_amount(steps)} steps (one per item per repetition), though "
                                 f"most add no layer; the limit is {MAX_STEPS:,}{why}; lower "
                                 "the repeat counts"))


def _amount(n: int) -> str:
    """A count for a message: exact when readable, else its order of magnitude."""
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def expand(tree: Node, variables: Mapping[str, Any], layer_defaults: Mapping[str, Mapping],
           notes: list[str] | None = None) -> list[Occurrence]:
    """Unroll ``tree``; raise BlueprintError listing every problem found. Readings worth
    saying (a list that could mean two things) are appended to ``notes``."""
    _check_size(tree, variables)
    ex = _Expander(variables, layer_defaults)
    ex.walk(tree, ())
    used = referenced(tree)
    for name in variables:
        if name not in used:  # a typo, or a name the pattern dropped: never ignore it silently
            from .source import TOP_KEYS
            hint = suggest(name, sorted(used)) or suggest(name, TOP_KEYS)
            known = ", ".join(sorted(used)) or "none"
            ex.fail(f"vars.{name}", f"is not used by the pattern{hint}; the pattern's variables "
                    f"are: {known}")
    if ex.problems:
        raise BlueprintError(ex.problems)
    if notes is not None:
        notes.extend(ex.notes)
    return ex.out


FLAG_WORDS = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}

# What other frameworks call a token, so a Keras or PyTorch habit gets pointed at ours.
ALIASES = {"DENSE": "FC", "LINEAR": "FC", "FULLYCONNECTED": "FC", "MAXPOOL": "POOL",
           "MAXPOOL2D": "POOL", "MAXPOOLING2D": "POOL", "AVGPOOL": "POOL (with type=avg)",
           "AVERAGEPOOLING2D": "POOL (with type=avg)", "CONV2D": "CONV", "CONV1D": "CONV",
           "CONVOLUTION": "CONV", "BATCHNORM": "BN", "BATCHNORMALIZATION": "BN",
           "FLAT": "FLATTEN", "DROP": "DROPOUT", "GLOBALAVERAGEPOOLING2D": "GLOBAL_POOL",
           "GAP": "GLOBAL_POOL", "INPUTLAYER": "INPUT",
           "ACTIVATION": "RELU (or another activation token)"}


def referenced(node: Node) -> set[str]:
    """Every variable the pattern names: repeat counts, optional flags, argument values —
    including those inside optional groups that are switched off."""
    if isinstance(node, Seq):
        return set().union(*(referenced(item) for item in node.items))
    if isinstance(node, Repeat):
        return referenced(node.body) | ({node.count} if isinstance(node.count, str) else set())
    if isinstance(node, Optional):
        return referenced(node.body) | {node.flag}
    token = TOKENS.get(node.token.upper())
    names = set()
    for key, raw in [(None, r) for r in node.positional] + list(node.keywords):
        if not isinstance(raw, Word) or token is None:
            continue
        if key is None and _Expander._choice_for(token, raw) is not None:
            continue
        if key is not None and _Expander._is_choice(token, key, raw):
            continue
        names.add(raw.name)
    return names


def _show(v: Any) -> str:
    return v.name if isinstance(v, Word) else str(v)
