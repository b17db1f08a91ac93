"""Search-space axes → Optuna ``suggest_*`` calls (define-by-run, so per-stage lists follow M)."""
from __future__ import annotations

import json
from typing import Any

from cnnbp.builder.search_space import (
    Choice,
    Dimension,
    FloatRange,
    IntRange,
    PerStage,
    SearchSpace,
)

_PLAIN = (type(None), bool, int, float, str)


def suggest(trial, space: SearchSpace, doc: dict) -> dict[str, Any]:
    """Axis name -> value for one trial; per-stage axes come last and read their stage count."""
    values: dict[str, Any] = {}
    for axis in space.axes:
        dim = axis.dim
        if isinstance(dim, PerStage):
            stages = values.get(dim.stages, (doc.get("vars") or {}).get(dim.stages))
            values[axis.name] = [_one(trial, f"{axis.name}[{i}]", dim.each)
                                 for i in range(int(stages))]
        else:
            values[axis.name] = _one(trial, axis.name, dim)
    return values


def _one(trial, name: str, dim: Dimension) -> Any:
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    assert isinstance(dim, Choice)
    if all(isinstance(v, _PLAIN) for v in dim.values):
        return trial.suggest_categorical(name, list(dim.values))
    # Optuna stores only plain values: a list (e.g. per-stage filters) travels as JSON text.
    return json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in dim.values]))
