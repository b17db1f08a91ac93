"""Optimizer and learning-rate schedule from ``ir.Training`` (per-epoch settings → steps)."""
from __future__ import annotations

import keras

from cnnbp.builder import ir

from .finetune import head_rate


@keras.saving.register_keras_serializable(package="cnnbp")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to the wrapped schedule's start over ``warmup_steps``."""

    def __init__(self, after, warmup_steps: int, target: float):
        self.after = after
        self.warmup_steps = int(warmup_steps)
        self.target = float(target)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.target * (step + 1) / max(self.warmup_steps, 1)
        rest = self.after(keras.ops.maximum(step - self.warmup_steps, 0)) \
            if callable(self.after) else self.after
        return keras.ops.where(step < self.warmup_steps, warm, rest)

    def get_config(self):
        """The schedule as Keras serialises it into an optimizer's config (model.keras)."""
        after = keras.optimizers.schedules.serialize(self.after) if callable(self.after) \
            else self.after
        return {"after": after, "warmup_steps": self.warmup_steps, "target": self.target}

    @classmethod
    def from_config(cls, config):
        """The schedule back from ``get_config``'s dict (loading model.keras)."""
        after = config["after"]
        if isinstance(after, dict):
            after = keras.optimizers.schedules.deserialize(after)
        return cls(after, config["warmup_steps"], config["target"])


def learning_rate(t: ir.Training, steps_per_epoch: int):
    """A float or a schedule of optimizer steps."""
    warm = int(round(t.warmup_epochs * steps_per_epoch))
    S = keras.optimizers.schedules
    if t.schedule == "step":
        after = S.ExponentialDecay(t.learning_rate, t.step_epochs * steps_per_epoch, t.gamma,
                                   staircase=True)
    elif t.schedule == "exponential":
        after = S.ExponentialDecay(t.learning_rate, steps_per_epoch, t.gamma)
    elif t.schedule == "cosine":
        after = S.CosineDecay(t.learning_rate, max((t.epochs * steps_per_epoch) - warm, 1))
    else:
        after = float(t.learning_rate)  # YAML's 5 is an int, which Keras's optimizers refuse
    return Warmup(after, warm, t.learning_rate) if warm else after


def optimizer(t: ir.Training, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The Keras optimizer ``training.optimizer`` names, with its learning-rate schedule
    spread over ``steps_per_epoch`` steps an epoch and ``training.weight_decay``; with
    ``training.head_learning_rate`` or ``training.freeze``, one that steps the head at its
    own rate and, on JAX, the subset of weights that train (``finetune.head_rate``)."""
    lr = learning_rate(t, steps_per_epoch)
    opt = keras.optimizers
    decay = t.weight_decay or None
    if t.optimizer == "sgd":
        kind, kw = opt.SGD, {"momentum": t.momentum, "nesterov": t.nesterov,
                             "weight_decay": decay}
    elif t.optimizer == "rmsprop":
        kind, kw = opt.RMSprop, {"momentum": t.momentum, "weight_decay": decay}
    elif t.optimizer == "adamw":
        kind, kw = opt.AdamW, {"weight_decay": t.weight_decay or 0.004}
    else:
        kind, kw = opt.Adam, {"weight_decay": decay}
    if t.head_learning_rate is not None or t.freeze:  # (freeze: to step a subset on JAX)
        kind = head_rate(kind)
    return kind(lr, **kw)
