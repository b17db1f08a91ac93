"""Blueprint → IR → analysis → Keras model.

Parsing, the IR and the analysis need no TensorFlow; ``build_model`` imports it lazily.
"""
from __future__ import annotations

from pathlib import Path

from .analysis import Analysis, LayerStats, analyze
from .blueprint import Compiled, compile_source, load, load_expression
from .errors import BlueprintError, Problem
from .ir import Network

__all__ = ["Analysis", "BlueprintError", "Compiled", "LayerStats", "Network", "Problem",
           "analyze", "build_model", "compile_source", "load", "load_expression", "load_resolved"]


def build_model(network: Network):
    """Build the Keras model for a checked network (imports TensorFlow)."""
    from .keras_builder import build_model as _build
    return _build(network)


def load_resolved(folder_or_file: str | Path) -> Compiled:
    """The compiled net of a run's or bundle's resolved ``blueprint.yaml`` (give the folder or
    the file): the one reader of that file, through the guarded loader.

    Unlike ``load`` it never falls back to a shipped blueprint of the same name: a run or bundle
    without its blueprint is an ``ArtifactError``, and a damaged one a located BlueprintError.
    """
    from cnnbp.contract.errors import ArtifactError

    from .source import read
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / "blueprint.yaml"
    if not path.is_file():
        raise ArtifactError(path, "the resolved blueprint is missing")
    return compile_source(read(str(path)))
