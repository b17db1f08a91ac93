"""Blueprint source → validated IR and its analysis; the one path every command takes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import ir
from .analysis import Analysis, analyze
from .errors import BlueprintError, Problem
from .expand import expand
from .lower import lower
from .pattern import parse
from .schema import validate
from .search_space import parse as parse_search
from .source import Source, apply_overrides, from_expression, read
from .tokens import TOKENS
from .training import training_from
from .values import ValueProblem, convert
from .weights_source import channel_problems


@dataclass(frozen=True)
class Compiled:
    """A checked blueprint: the data it resolved to, its IR and its analysis."""

    resolved: dict      # the blueprint with every override applied
    network: ir.Network
    analysis: Analysis
    notes: tuple[str, ...] = ()  # readings worth saying (a list that could mean two things)


def load(ref: str, overrides: list[str] | tuple[str, ...] = ()) -> Compiled:
    """Read a blueprint file (or shipped name), apply ``KEY=VALUE`` overrides and check it."""
    return compile_source(apply_overrides(read(ref), list(overrides)))


def load_expression(pattern: str, overrides: list[str] | tuple[str, ...] = ()) -> Compiled:
    """Check a one-line net such as ``INPUT(32x32x3)-CONV(10,5x5,pad=2)-RELU-FC(10)-SOFTMAX``."""
    return compile_source(apply_overrides(from_expression(pattern), list(overrides)))


def compile_source(src: Source) -> Compiled:
    """Validate ``src`` fully; raise BlueprintError with every problem, located in the file."""
    try:
        problems = validate(src.data)
        if problems:
            raise BlueprintError(problems)
        parse_search(src.data)  # a `search:` section is checked wherever the blueprint is
        return _compile(src.data)
    except BlueprintError as exc:
        raise src.error(exc) from None


def compile_data(doc: dict[str, Any]) -> Compiled:
    """Compile blueprint data whose schema is already checked (no file, no positions): the
    fast path for the many variants of one checked blueprint that ``cnnbp search`` tries."""
    return _compile(doc)


@lru_cache(maxsize=64)
def _parsed(pattern: str):
    """The syntax tree (frozen dataclasses, safe to share): a search compiles hundreds of
    variants of one pattern, and parsing was half of each compile."""
    return parse(pattern)


def _compile(doc: dict[str, Any]) -> Compiled:
    input_shape = None
    if "input" in doc:
        try:
            input_shape = convert(TOKENS["INPUT"].arg("shape"), doc["input"], 0)
        except ValueProblem as exc:
            raise BlueprintError(Problem("input", str(exc))) from None
    rank = len(input_shape) - 1 if input_shape else 2
    tree = _parsed(doc["pattern"])
    notes: list[str] = []
    occurrences = expand(tree, doc.get("vars", {}), doc.get("layers", {}), notes)
    layers, classes, inline_shape = lower(occurrences, rank, doc.get("classes"))
    if inline_shape and input_shape and inline_shape != input_shape:
        raise BlueprintError(Problem("input", f"is {'x'.join(map(str, input_shape))} but the "
                                     f"pattern's INPUT says {'x'.join(map(str, inline_shape))}"))
    input_shape = input_shape or inline_shape
    if input_shape is None:
        raise BlueprintError(Problem("input", "is not set: add `input: [32, 32, 3]` (or "
                                     "[40, 1] for 1-D signals), or start the pattern with "
                                     "INPUT(32x32x3)"))
    problems = channel_problems(doc.get("weights", {}), input_shape[-1])
    if problems:  # here, where the input is known, so that they carry the file and line
        raise BlueprintError(problems)
    names = tuple(doc.get("class_names", ()))
    if names and len(names) != classes:
        raise BlueprintError(Problem("class_names", f"has {len(names)} names but the net has "
                                     f"{classes} classes"))
    _check_names(names)
    # weights.from, channel_order and normalize are builder/weights*.py's, not initialisation
    weights = ir.Weights(**{k: v for k, v in doc.get("weights", {}).items()
                            if k not in ("from", "channel_order", "normalize")})
    training = training_from(doc.get("training"), len(input_shape) - 1, layers)
    net = ir.Network(doc["name"], input_shape, classes, layers, weights,
                     doc.get("strict", True), names, training)
    resolved = dict(doc, input=list(input_shape), classes=classes)
    return Compiled(resolved, net, analyze(net), tuple(notes))


def _check_names(names: tuple[str, ...]) -> None:
    """Class names are one line each (labels.txt) and name one class each."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name.strip() or name.splitlines() != [name]:  # labels.txt's own rule
            raise BlueprintError(Problem(f"class_names[{i}]", f"is {name!r}; each class name "
                                         "must be one non-empty line"))
        if name in seen:
            raise BlueprintError(Problem(f"class_names[{i}]", f"{name!r} is also "
                                         f"class_names[{seen[name]}]; each class needs its "
                                         "own name"))
        seen[name] = i
