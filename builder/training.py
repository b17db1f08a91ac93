"""The blueprint's ``training:`` section → an immutable, checked ``ir.Training``.

Types and ranges are the schema's job; this module adds the checks that need the net
(augmentations that make no sense for 1-D signals) and fills in the defaults.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from . import ir
from .errors import BlueprintError, Problem

# Augmentations a 1-D signal can take (it is treated as a 1-pixel-high image).
_ONE_D = {"flip", "translate", "crop", "contrast", "brightness"}


def training_from(section: dict[str, Any] | None, rank: int) -> ir.Training:
    """Build the Training record; raise BlueprintError naming ``training.*`` keys."""
    section = dict(section or {})
    augment = ir.Augment(**section.pop("augment", {}))
    problems = []
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
    if problems:
        raise BlueprintError(problems)
    return t


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
            "mixed_precision": {"enum": ["auto", True, False],
                                "description": "float16 compute; auto: off (float32) everywhere"},
            "xla": {"enum": ["auto", True, False],
                    "description": "XLA-compiled training steps; auto: off on a TensorFlow CPU "
                                   "(measured slower), on for GPUs, always on with JAX"},
            "tensorboard": {"type": "boolean",
                            "description": "write TensorBoard event files to RUN/tensorboard"},
        },
    }
