"""Sampled values → a candidate blueprint, checked statically: shapes, then the budgets.

The analyser knows every net's shapes, parameters, MACs and activation memory without
TensorFlow, so an impossible or oversized candidate costs about a millisecond and never
reaches Keras. Its verdict is also a constraint vector that Optuna's samplers learn from.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cnnbp.builder.blueprint import Compiled, compile_data
from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.search_schema import BUDGETS
from cnnbp.builder.search_space import SearchSpace, with_values

# One slot per way a candidate can be excluded; Optuna needs the same length every time.
CONSTRAINTS = ("shape",) + BUDGETS
_MEASURES = {"max_params": "params", "max_macs": "macs",
             "max_activation_memory": "activation_memory", "max_latency_ms": "latency_ms"}
_UNITS = {"max_params": "parameters", "max_macs": "MACs",
          "max_activation_memory": "activation bytes", "max_latency_ms": "ms batch-1 latency"}


@dataclass(frozen=True)
class Candidate:
    """One member of the family and the static verdict on it."""

    values: dict[str, Any]                 # axis name -> sampled value
    compiled: Compiled | None = None
    measures: dict[str, float] = field(default_factory=dict)
    excluded_by: str | None = None         # "shape" or a budget name
    reason: str | None = None
    check_ms: float = 0.0
    limit: float = 0.0                     # the budget that excluded it

    @property
    def feasible(self) -> bool:
        """Whether it passed the shape checks and every budget."""
        return self.excluded_by is None

    def constraints(self) -> list[float]:
        """Optuna's convention: > 0 violates. Budgets say by how much (a fraction over)."""
        out = []
        for name in CONSTRAINTS:
            if name != self.excluded_by:
                out.append(0.0)
            elif name == "shape":
                out.append(1.0)
            else:
                out.append(float(self.measures[_MEASURES[name]]) / self.limit - 1.0 + 1e-9)
        return out


@dataclass(frozen=True)
class _Excluded:
    """Why a candidate is out: the constraint it broke, the limit, and the message."""
    by: str
    reason: str
    limit: float = 0.0


def judge(doc: dict, space: SearchSpace, values: dict[str, Any],
          latency=None) -> Candidate:
    """Compile and analyse the candidate ``values`` put into ``doc``; never imports TensorFlow.

    ``latency`` (network -> ms), when given, is called only for a candidate that passed the
    static budgets.
    """
    started = time.perf_counter()
    paths = {a.path: values[a.name] for a in space.axes}
    compiled, measures, out = None, {}, None
    try:
        compiled = compile_data(with_values(doc, paths))
    except BlueprintError as exc:
        first = exc.problems[0]
        out = _Excluded("shape", f"{first.path}: {first.message}" if first.path
                        else first.message)
    if compiled is not None:
        a = compiled.analysis
        measures = {"params": a.total_params, "macs": a.total_macs,
                    "activation_memory": a.total_memory}
        out = _over(measures, space, ("max_params", "max_macs", "max_activation_memory"))
        if out is None and latency is not None:
            measures["latency_ms"] = latency(compiled)
            out = _over(measures, space, ("max_latency_ms",))
    elapsed_ms = (time.perf_counter() - started) * 1e3
    if out is None:
        return Candidate(values, compiled, measures, check_ms=elapsed_ms)
    return Candidate(values, compiled, measures, out.by, out.reason, elapsed_ms, out.limit)


def _over(measures: dict[str, float], space: SearchSpace,
          names: tuple[str, ...]) -> _Excluded | None:
    """The first of the budgets ``names`` that ``measures`` exceed, or None."""
    for name in names:
        limit = space.budgets.get(name)
        value = measures.get(_MEASURES[name])
        if limit is not None and value is not None and value > limit:
            return _Excluded(name, f"{value:,.6g} {_UNITS[name]} > {name} {limit:,}",
                             float(limit))
    return None
