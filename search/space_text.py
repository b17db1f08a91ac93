"""How ``cnnbp search`` read each space entry, in words: a two-value numeric list is a range,
which surprises whoever meant a choice (``kernel: [3, 5]`` samples 4 too), so it is said."""
from __future__ import annotations

import json

from cnnbp.builder import search_space as ss


def describe(space: ss.SearchSpace) -> list[str]:
    """One line per axis: ``CONV.kernel: range 3..5 (whole numbers)``, ``FC.units: choice of
    [64, 128]``; then, when there is a range, how to write a choice of two numbers."""
    lines = [f"{axis.name}: {_dim(axis.dim)}" for axis in space.axes]
    if any("range" in line for line in lines):
        lines.append("(a list of two numbers is a range; for just the two, write "
                     "{choice: [3, 5]})")
    if len(space.objectives) == 1:  # Optuna prunes one-objective studies only
        lines.append({"none": "pruner: none (every trial trains every epoch)",
                      "median": f"pruner: median (a trial may stop after {space.min_epochs}+ "
                                "epochs)",
                      "hyperband": f"pruner: hyperband (successive halving from "
                                   f"{space.min_epochs} epoch{'s' * (space.min_epochs > 1)}, "
                                   "reduction factor 3)"}[space.pruner])
    return lines


def _dim(dim: ss.Dimension) -> str:
    if isinstance(dim, ss.PerStage):
        return f"per stage (as many as {dim.stages}), each {_dim(dim.each)}"
    if isinstance(dim, ss.IntRange):
        step = f", step {dim.step}" if dim.step != 1 else ""
        scale = ", log scale" if dim.log else ""
        return f"range {dim.low}..{dim.high} (whole numbers{step}{scale})"
    if isinstance(dim, ss.FloatRange):
        return f"range {dim.low:g}..{dim.high:g} (real numbers{', log scale' if dim.log else ''})"
    assert isinstance(dim, ss.Choice)
    return f"choice of {json.dumps(list(dim.values))}"
