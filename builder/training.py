"""The blueprint's ``training:`` section → an immutable, checked ``ir.Training``.

Types and ranges are the schema's job; this module adds the checks that need the net
(augmentations that make no sense for 1-D signals) and fills in the defaults.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from . import ir
from .errors import BlueprintError, Problem
from .lower import stage_of

# Augmentations a 1-D signal can take (it is treated as a 1-pixel-high image).
_ONE_D = {"flip", "translate", "crop", "contrast", "brightness"}


def training_from(section: dict[str, Any] | None, rank: int,
                  layers: tuple[ir.Layer, ...] = ()) -> ir.Training:
    """Build the Training record; raise BlueprintError naming ``training.*`` keys.
    ``layers`` (the net's) name the stages that ``training.freeze`` may name."""
    section = dict(section or {})
    augment = ir.Augment(**section.pop("augment", {}))
    problems = []
    if "freeze" in section:
        section["freeze"] = _frozen_stages(section["freeze"], stages_of(layers), problems)
    freeze_bad = bool(problems)  # (then its stages are unknown: unfreeze_after is not judged)
    if rank == 1:
        for f in fields(augment):
            value = getattr(augment, f.name)
            if value and value != "none" and f.name not in _ONE_D:
                problems.append(Problem(f"training.augment.{f.name}", f"{f.name} needs 2-D "
                                        f"images; this net's input is 1-D (valid for 1-D: "
                                        f"{', '.join(sorted(_ONE_D))})"))
        if augment.flip in ("vertical", "both"):
            problems.append(Problem("training.augment.flip", "a 1-D signal can only be "
                                    "flipped horizontally (reversed): use horizontal or none"))
    t = ir.Training(augment=augment, **section)
    if t.schedule == "step" and t.step_epochs < 1:
        problems.append(Problem("training.step_epochs", "must be >= 1 for the step schedule"))
    if t.warmup_epochs >= t.epochs:
        problems.append(Problem("training.warmup_epochs", f"{t.warmup_epochs:g} must be fewer "
                                f"than the {t.epochs} training epochs"))
    if t.optimizer not in ("sgd", "rmsprop") and "momentum" in section:
        problems.append(Problem("training.momentum", f"applies to sgd and rmsprop only; "
                                f"{t.optimizer} has its own moment estimates"))
    if t.unfreeze_after and not t.freeze:
        if not freeze_bad:
            problems.append(Problem("training.unfreeze_after", "unfreezes the stages that "
                                    "training.freeze names, but nothing is frozen: add "
                                    "freeze: features (or a list of stages), or drop it"))
    elif t.unfreeze_after >= t.epochs:
        problems.append(Problem("training.unfreeze_after", f"{t.unfreeze_after} must be fewer "
                                f"than the {t.epochs} training epochs, or the frozen stages "
                                "never train; drop it to keep them frozen throughout"))
    if problems:
        raise BlueprintError(problems)
    return t


def stages_of(layers) -> tuple[str, ...]:
    """The net's stage names in order (``stage1``, ``stage2``, ...), from its layer names."""
    return tuple(dict.fromkeys(s for s in map(stage_of, (layer.name for layer in layers))
                               if s))


def _frozen_stages(spec, stages: tuple[str, ...], problems: list) -> tuple[str, ...]:
    """``freeze: features``, ``[stage1, stage2]`` or ``{until: stage3}`` → the stage names."""
    valid = (f"this net's stages are {', '.join(stages)}" if stages else
             "this net has no stages (no CONV before its head)")
    if spec == "features":
        if not stages:
            problems.append(Problem("training.freeze", f"features: {valid}, so there is "
                                    "nothing to freeze"))
        return stages
    named = [("training.freeze.until", spec["until"])] if isinstance(spec, dict) else \
        [(f"training.freeze[{i}]", name) for i, name in enumerate(spec)]
    for path, name in named:
        if name not in stages:
            problems.append(Problem(path, f"{name} is not a stage of this net; {valid}" + (
                " (stage k begins at the first CONV after the (k-1)-th POOL), or write "
                "freeze: features for all of them" if stages else "")))
    if isinstance(spec, dict):
        return stages[:stages.index(spec["until"]) + 1] if spec["until"] in stages else ()
    return tuple(s for s in stages if s in spec)  # in the net's order, each once


def schema() -> dict:
    """The JSON Schema of the ``training:`` section."""
    def num(lo=None, hi=None, excl=False, **kw) -> dict:
        low = {"exclusiveMinimum" if excl else "minimum": lo} if lo is not None else {}
        return {"type": "number", **kw, **low, **({"maximum": hi} if hi is not None else {})}

    integer = lambda lo: {"type": "integer", "minimum": lo}
    return {
        "type": "object", "additionalProperties": False,
        "description": "how `cnnbp train` fits the net",
        "properties": {
            "epochs": integer(1),
            "batch_size": integer(1),
            "optimizer": {"enum": ["sgd", "adam", "adamw", "rmsprop"]},
            "learning_rate": num(0, excl=True),
            "momentum": num(0, 0.999),
            "nesterov": {"type": "boolean"},
            "weight_decay": num(0, description="decoupled weight decay of the optimizer"),
            "schedule": {"enum": ["constant", "step", "exponential", "cosine"]},
            "step_epochs": integer(1),
            "gamma": num(0, 1, excl=True, description="factor per step (step) or per epoch "
                         "(exponential)"),
            "warmup_epochs": num(0, description="linear warm-up from 0 before the schedule"),
            "label_smoothing": num(0, 0.5),
            "early_stopping": integer(0),
            "validation_split": num(0, 0.5),
            "seed": integer(0),
            "augment": {"type": "object", "additionalProperties": False, "properties": {
                "flip": {"enum": ["none", "horizontal", "vertical", "both"]},
                "translate": num(0, 0.5, description="fraction of the size"),
                "crop": integer(0),
                "rotate": num(0, 180, description="degrees"),
                "contrast": num(0, 1),
                "brightness": num(0, 1)}},
            "resize": {"enum": ["stretch", "center_crop", "letterbox"],
                       "description": "how an image is fitted to the input size, in training "
                                      "and in serving (default stretch)"},
            "cache": {"enum": ["auto", "memory", "disk", "none"],
                      "description": "where decoded images are kept between epochs; auto: "
                                     "none for one epoch, else memory within "
                                     "cache_budget_mb, else disk, else none"},
            "cache_budget_mb": integer(0),
            "stats_sample": integer(1),
            "skip_bad_images": {"type": "boolean"},
            "deterministic": {"enum": ["auto", True, False],
                              "description": "op determinism; auto: on for CPU, off for GPU"},
            "mixed_precision": {"enum": ["auto", True, False, "float16", "bfloat16"],
                                "description": "16-bit compute with float32 weights: true or "
                                               "float16 (with loss scaling), bfloat16; auto: "
                                               "bfloat16 on JAX GPUs of compute capability "
                                               "8.0+, float32 elsewhere"},
            "xla": {"enum": ["auto", True, False],
                    "description": "XLA-compiled training steps; auto: off on a TensorFlow CPU "
                                   "(measured slower), on for GPUs, always on with JAX"},
            "freeze": {
                "description": "stages kept fixed while training (fine-tuning): features (all "
                               "of them), a list such as [stage1, stage2], or {until: stage3} "
                               "(stage1 through stage3); their BN layers run in inference mode",
                "anyOf": [{"enum": ["features"]},
                          {"type": "array", "items": {"type": "string"}, "minItems": 1,
                           "uniqueItems": True},
                          {"type": "object", "additionalProperties": False,
                           "required": ["until"], "properties": {"until": {"type": "string"}}}]},
            "unfreeze_after": integer(1) | {
                "description": "train the frozen stages too from this many epochs on"},
            "head_learning_rate": num(0, excl=True, description=(
                "learning rate of the head (the layers after the last stage: flatten, FCs, "
                "predictions), scaled by the same schedule; learning_rate stays the rest's")),
            "tensorboard": {"type": "boolean",
                            "description": "write TensorBoard event files to RUN/tensorboard"},
        },
    }
