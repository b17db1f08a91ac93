"""The JSON Schema fragment of a blueprint's ``search:`` section, and the names it allows.

A leaf: ``schema`` puts the fragment into the blueprint schema, and ``search_space`` (which
checks the section's meaning against that schema) takes the names from here, so neither has to
import the other back.
"""
from __future__ import annotations

BUDGETS = ("max_params", "max_macs", "max_activation_memory", "max_latency_ms")
OBJECTIVES = ("accuracy", "accuracy,macs", "accuracy,latency")
PRUNERS = ("hyperband", "median", "none")
SECTION_KEYS = ("space", "objective", "pruner", "min_epochs") + BUDGETS


def schema() -> dict:
    """The JSON Schema of the ``search:`` section (structure only; ``parse`` checks meaning)."""
    whole = {"type": "integer", "minimum": 1}
    return {
        "type": "object", "additionalProperties": False,
        "description": "what `cnnbp search` varies, its budgets and its objective",
        "properties": {
            "space": {"type": "object", "minProperties": 1,
                      "description": "key -> [low, high] (two whole numbers), a list of "
                      "choices, {low, high, log, step}, {choice: [...]} or "
                      "{per_stage: ..., stages: M}",
                      "additionalProperties": {"anyOf": [
                          {"type": "array", "minItems": 1},
                          {"type": "object", "additionalProperties": False,
                           "required": ["low", "high"],
                           "properties": {"low": {"type": "number"}, "high": {"type": "number"},
                                          "log": {"type": "boolean"},
                                          "step": {"type": "integer", "minimum": 1}}},
                          {"type": "object", "additionalProperties": False,
                           "required": ["choice"],
                           "properties": {"choice": {"type": "array", "minItems": 1}}},
                          {"type": "object", "additionalProperties": False,
                           "required": ["per_stage"],
                           "properties": {"per_stage": {}, "stages": {"type": "string"}}},
                          {"type": ["integer", "number", "boolean", "string"]}]}},
            "max_params": {**whole, "description": "largest parameter count"},
            "max_macs": {**whole, "description": "largest multiply-accumulates per image"},
            "max_activation_memory": {**whole, "description": "largest float32 activation "
                                      "bytes per image, all layers"},
            "max_latency_ms": {"type": "number", "exclusiveMinimum": 0,
                               "description": "ONNX Runtime batch-1 latency on this machine"},
            "objective": {"enum": list(OBJECTIVES)},
            "pruner": {"enum": list(PRUNERS),
                       "description": "how trials are stopped early: hyperband (default: "
                       "successive halving over epochs, from min_epochs up to "
                       "training.epochs), median, or none (every trial trains every epoch)"},
            "min_epochs": {**whole, "description": "the fewest epochs a trial trains before "
                           "the pruner may stop it (default 1)"},
        },
    }
