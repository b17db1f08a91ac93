"""Fine-tuning controls on a built model: the stages ``training.freeze`` names kept fixed (their
BN layers in inference mode) until ``training.unfreeze_after`` epochs, and the head trained at
``training.head_learning_rate``.

Keras reads which variables train when a model is compiled, so a change of phase compiles the
model again. The optimizer is built once over every weight that trains in any phase: its
state has one shape throughout, so a run resumed in either phase restores it as saved.
"""
from __future__ import annotations

from cnnbp.builder import ir


def is_head(layer_name: str) -> bool:
    """Whether a layer is in the head: every layer after the last stage (``flatten``, ``fc1``,
    ``fc1_relu``, ..., ``predictions``); stage layers are named ``stageK_...``."""
    return not layer_name.startswith("stage")


def head_rate(base: type) -> type:
    """``base`` (a Keras optimizer class) with the head's variables stepped at ``scale`` times
    the learning rate, schedule included; set ``head_scale`` and call ``mark_head`` once the
    optimizer is built. Keras's ``fit`` has no per-variable rate; ``update_step`` receives
    each variable with the rate on every backend, so the scale is applied there. Decoupled
    weight decay still follows ``learning_rate``."""

    class HeadRate(base):
        head_scale = 1.0
        _head: frozenset = frozenset()

        def mark_head(self, variables) -> None:
            """Remember which of the built optimizer's variables are the head's."""
            self._head = frozenset(self._get_variable_index(v) for v in variables)

        def update_step(self, gradient, variable, learning_rate):
            if self._get_variable_index(variable) in self._head:
                learning_rate = learning_rate * self.head_scale
            return super().update_step(gradient, variable, learning_rate)

    HeadRate.__name__ = HeadRate.__qualname__ = f"HeadRate{base.__name__}"
    return HeadRate


def phases(t: ir.Training, done: int) -> list[tuple[int, int]]:
    """The epoch ranges ``[first, last)`` to fit in one go from epoch ``done``: split where
    the frozen stages unfreeze."""
    cut = t.unfreeze_after
    if cut and done < cut < t.epochs:
        return [(done, cut), (cut, t.epochs)]
    return [(done, t.epochs)] if done < t.epochs else []


def frozen_layers(model, t: ir.Training) -> list:
    """The model's layers in the stages ``training.freeze`` names."""
    stages = set(t.freeze)
    return [layer for layer in model.layers if layer.name.split("_")[0] in stages]


def start(model, t: ir.Training) -> None:
    """Build the optimizer over every weight that trains in some phase (all of them; a
    restored run's is built already) and mark the head's for its own rate."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # mixed precision wraps it
    if hasattr(inner, "mark_head"):
        inner.head_scale = t.head_learning_rate / t.learning_rate
        inner.mark_head([v for layer in model.layers if is_head(layer.name)
                         for v in layer.trainable_weights])


def enter(model, t: ir.Training, epoch: int) -> bool:
    """Freeze or unfreeze the stages as epoch ``epoch`` (0-based) trains them and, when that
    changes anything, compile the model again; return whether it did."""
    frozen = bool(t.freeze) and not (t.unfreeze_after and epoch >= t.unfreeze_after)
    changed = False
    for layer in frozen_layers(model, t):
        if layer.trainable == frozen:
            layer.trainable = not frozen  # a frozen BN layer normalises with its moving stats
            changed = True
    if changed:
        recompile(model)
    return changed


def recompile(model) -> None:
    """Compile ``model`` again with the same optimizer (its state kept), loss, metrics and
    settings, so Keras trains the variables that are trainable now."""
    import keras  # here, as everywhere in train/: importing the package must not start TensorFlow
    config = model.get_compile_config()
    model.compile(optimizer=model.optimizer, loss=model.loss,
                  metrics=[keras.metrics.deserialize(m) for m in config["metrics"]],
                  steps_per_execution=config["steps_per_execution"],
                  jit_compile=config["jit_compile"])
