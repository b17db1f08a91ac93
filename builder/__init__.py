"""Blueprint → IR → analysis → Keras model.

Parsing, the IR and the analysis need no TensorFlow; ``build_model`` imports it lazily.
"""
from __future__ import annotations

from .analysis import Analysis, LayerStats, analyze
from .blueprint import Compiled, compile_source, load, load_expression
from .errors import BlueprintError, Problem
from .ir import Network

__all__ = ["Analysis", "BlueprintError", "Compiled", "LayerStats", "Network", "Problem",
           "analyze", "build_model", "compile_source", "load", "load_expression"]


def build_model(network: Network):
    """Build the Keras model for a checked network (imports TensorFlow)."""
    from .keras_builder import build_model as _build
    return _build(network)
