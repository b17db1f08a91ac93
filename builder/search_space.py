"""A blueprint's ``search:`` section → a checked ``SearchSpace``; no TensorFlow, no Optuna.

The section names what ``cnnbp search`` may vary, over the blueprint's own keys::

    search:
      space:
        M: [1, 4]                    # two whole numbers: a range, both ends included
        N: {per_stage: [1, 3]}       # one value per stage (M of them)
        POOL: [true, false]          # any other list: a choice
        FC.units: [64, 128, 256]     # TOKEN.argument: layers.FC.units
        learning_rate: {low: 0.0003, high: 0.01, log: true}
      max_params: 200000
      objective: accuracy,macs

A bare name is a variable of the pattern (``vars.N``) or a ``training:`` key; ``TOKEN.arg``
is a layer argument; a full key path (``training.augment.translate``) is taken as written.
Every choice and range end is checked against the blueprint schema at the key it sets, so a
mistake is reported once, here, with its line and column — not by each candidate.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Union

from .errors import BlueprintError, Problem
from .pattern import Optional, Repeat, Seq
from .pattern import parse as parse_pattern
from .schema import validate
from .search_schema import BUDGETS
from .tokens import TOKENS, suggest
from .training import schema as training_schema


@dataclass(frozen=True)
class IntRange:
    """Whole numbers from ``low`` to ``high``, both included, every ``step``."""
    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """Numbers from ``low`` to ``high``, sampled on a log scale when ``log``."""
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, flags, strings or lists)."""
    values: tuple


@dataclass(frozen=True)
class PerStage:
    """One value per stage: a list as long as the variable ``stages`` (default ``M``)."""

    each: Union[IntRange, FloatRange, Choice]
    stages: str = "M"


Dimension = Union[IntRange, FloatRange, Choice, PerStage]


@dataclass(frozen=True)
class Axis:
    """One searched key: its name as written, the key path it sets, and its values."""

    name: str        # as in the blueprint: "FC.units"
    path: tuple      # ("layers", "FC", "units")
    dim: Dimension


@dataclass(frozen=True)
class SearchSpace:
    """The checked ``search:`` section: axes in sampling order, budgets, objective."""
    axes: tuple[Axis, ...]
    budgets: dict            # budget name -> limit; only those given
    objective: str = "accuracy"
    pruner: str = "hyperband"  # hyperband | median | none (single objective only)
    min_epochs: int = 1        # the fewest epochs before a trial may be stopped

    @property
    def objectives(self) -> tuple[str, ...]:
        """``("accuracy",)`` or accuracy and the cost it is traded against."""
        return tuple(self.objective.split(","))

    def to_json(self) -> str:
        """A stable text of the space, to tell a resumed study from a different one."""
        return json.dumps({"axes": [[a.name, repr(a.dim)] for a in self.axes],
                           "budgets": self.budgets, "objective": self.objective,
                           "pruner": self.pruner, "min_epochs": self.min_epochs},
                          sort_keys=True)


def parse(doc: dict) -> SearchSpace | None:
    """The checked space of a schema-valid blueprint ``doc``; None when it has no ``search:``.

    Raises BlueprintError naming ``search.space.KEY`` for every problem.
    """
    section = doc.get("search")
    if section is None:
        return None
    problems: list[Problem] = []
    base = {k: v for k, v in doc.items() if k != "search"}
    axes = []
    for name, raw in (section.get("space") or {}).items():
        where = f"search.space.{name}"
        try:
            path = _key_path(name, base)
            dim = _dimension(raw)
            axes.append(Axis(name, path, dim))
        except _Bad as exc:
            problems.append(Problem(where, str(exc)))
    axes = _order(axes, base, problems)
    for axis in axes:
        problems += _check_values(axis, base)
    if problems:
        raise BlueprintError(problems)
    budgets = {k: section[k] for k in BUDGETS if k in section}
    return SearchSpace(tuple(axes), budgets, section.get("objective", "accuracy"),
                       section.get("pruner", "hyperband"), section.get("min_epochs", 1))


class _Bad(ValueError):
    pass


def _key_path(name: str, doc: dict) -> tuple:
    training_keys = list(training_schema()["properties"])
    parts = name.split(".")
    if parts[0] in ("vars", "layers", "training", "weights") and len(parts) > 1:
        path = tuple(parts)
    elif len(parts) == 2 and parts[0].isupper():
        path = ("layers", *parts)
    elif len(parts) == 1 and name in training_keys:
        path = ("training", name)
    elif len(parts) == 1:
        known = _variables(doc)
        if name not in known:
            names = sorted(known) + training_keys
            raise _Bad(f"{name} is not a variable of the pattern nor a training key"
                       f"{suggest(name, names)}; variables: {', '.join(sorted(known)) or 'none'}; "
                       "a layer argument is TOKEN.argument (FC.units), any key a full path "
                       "(training.augment.translate)")
        path = ("vars", name)
    else:
        raise _Bad("is not a key this search can set: write a variable (N), a training key "
                   "(learning_rate), TOKEN.argument (FC.units) or a full key path "
                   "(training.augment.translate)")
    if path[0] == "layers":
        if len(path) != 3:
            raise _Bad("a layer argument is TOKEN.argument, e.g. CONV.filters")
        token = TOKENS.get(path[1])
        if token is None:
            raise _Bad(f"unknown token {path[1]}{suggest(path[1], TOKENS)}")
        if token.arg(path[2]) is None:
            valid = [a.name for a in token.args]
            raise _Bad(f"{path[1]} has no argument {path[2]}{suggest(path[2], valid)}; its "
                       f"arguments: {', '.join(valid) or 'none'}")
    return path


def _variables(doc: dict) -> dict[str, str]:
    """Variable name -> "count", "flag" or "value": what the pattern and ``vars:`` bind."""
    names = {name: "value" for name in doc.get("vars") or {}}
    stack = [parse_pattern(doc["pattern"])]
    while stack:
        node = stack.pop()
        if isinstance(node, Seq):
            stack.extend(node.items)
        elif isinstance(node, Repeat):
            if isinstance(node.count, str):
                names[node.count] = "count"
            stack.append(node.body)
        elif isinstance(node, Optional):
            names[node.flag] = "flag"
            stack.append(node.body)
    return names


def _dimension(raw: Any, nested: bool = False) -> Dimension:
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(raw, list):
        if len(raw) == 2 and all(isinstance(v, int) and number(v) for v in raw):
            return _range(raw[0], raw[1], False, 1)
        if len(raw) == 2 and all(number(v) for v in raw):
            return _range(raw[0], raw[1], False, None)
        return _choice(raw)
    if isinstance(raw, dict):
        if "choice" in raw:
            return _choice(raw["choice"])
        if "per_stage" in raw:
            if nested:
                raise _Bad("per_stage cannot be nested inside per_stage")
            each = _dimension(raw["per_stage"], nested=True)
            return PerStage(each, raw.get("stages", "M"))
        return _range(raw["low"], raw["high"], raw.get("log", False), raw.get("step"))
    return Choice((raw,))


def _choice(values: list) -> Choice:
    if not values:
        raise _Bad("a choice needs at least one value")
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise _Bad(f"lists the same value twice: {values!r}")
    return Choice(tuple(values))


def _range(low, high, log: bool, step) -> IntRange | FloatRange:
    if low > high:
        raise _Bad(f"the range [{low}, {high}] is empty: low must be <= high")
    if log and low <= 0:
        raise _Bad(f"a log-scale range must stay above 0, got low {low}")
    whole = isinstance(low, int) and isinstance(high, int)
    if step is not None and (not whole or log):
        raise _Bad("step needs whole-number low and high, and no log scale")
    if whole:
        return IntRange(low, high, step or 1, log)
    return FloatRange(float(low), float(high), log)


def _order(axes: list[Axis], doc: dict, problems: list[Problem]) -> list[Axis]:
    """Plain axes first, per-stage ones after (their length is a variable sampled before)."""
    names = {a.path for a in axes}
    for a in axes:
        if isinstance(a.dim, PerStage):
            var = ("vars", a.dim.stages)
            if var not in names and a.dim.stages not in (doc.get("vars") or {}):
                problems.append(Problem(f"search.space.{a.name}", f"per_stage needs the "
                                        f"variable {a.dim.stages} (the number of stages) in "
                                        "vars: or in the space; name another with stages:"))
    return [a for a in axes if not isinstance(a.dim, PerStage)] + \
        [a for a in axes if isinstance(a.dim, PerStage)]


def examples(dim: Dimension) -> list:
    """The values worth checking against the schema: every choice, both ends of a range."""
    if isinstance(dim, PerStage):
        return [[v] for v in examples(dim.each)]
    if isinstance(dim, Choice):
        return list(dim.values)
    return [dim.low, dim.high]


def _check_values(axis: Axis, base: dict) -> list[Problem]:
    where = f"search.space.{axis.name}"
    target = ".".join(axis.path)
    found: list[Problem] = []
    kind = _variables(base).get(axis.path[1]) if axis.path[0] == "vars" else None
    for value in examples(axis.dim):
        scalar = value[0] if isinstance(axis.dim, PerStage) else value
        if kind == "count" and (isinstance(scalar, bool) or not isinstance(scalar, int)
                                or scalar < 0):
            found.append(Problem(where, f"{axis.name} is a repeat count: its values must be "
                                 f"whole numbers >= 0, got {scalar!r}"))
        if kind == "flag" and not isinstance(scalar, bool):
            found.append(Problem(where, f"{axis.name} is the flag of an optional item: its "
                                 f"values must be true or false, got {scalar!r}"))
        doc = set_path(base, axis.path, value)
        for p in validate(doc):
            if p.path == target or p.path.startswith(target + ".") or \
                    p.path.startswith(target + "["):
                msg = f"the value {value!r} does not fit {target}: {p.message}"
                if not any(f.message == msg for f in found):
                    found.append(Problem(where, msg))
    return found


def set_path(doc: dict, path: tuple, value: Any) -> dict:
    """A copy of ``doc`` with ``value`` at ``path`` (missing mappings are created)."""
    return with_values(doc, {path: value})


def with_values(doc: dict, values: dict[tuple, Any]) -> dict:
    """A copy of ``doc`` without ``search:``, with each value put at its key path."""
    out = copy.deepcopy({k: v for k, v in doc.items() if k != "search"})
    for path, value in values.items():
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return out
