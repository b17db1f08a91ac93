"""Fine-tuning controls on a built model: the stages ``training.freeze`` names kept fixed (their
BN layers in inference mode) until ``training.unfreeze_after`` epochs, and the head trained at
``training.head_learning_rate``.

Keras reads which variables train when a model is compiled, so a change of phase compiles the
model again. The optimizer is built once over every weight that trains in any phase: its
state has one shape throughout, so a run resumed in either phase restores it as saved; on
JAX, whose ``fit`` passes it only the weights that train now, it steps that subset.
"""
from __future__ import annotations

from cnnbp.builder import ir
from cnnbp.builder.lower import stage_of
from cnnbp.builder.weights_source import source_of


def is_head(layer_name: str) -> bool:
    """Whether a layer is in the head: every layer after the last stage (``flatten``, ``fc1``,
    ``fc1_relu``, ..., ``predictions``)."""
    return stage_of(layer_name) is None


def head_rate(base: type) -> type:
    """``base`` (a Keras optimizer class) with the head's variables stepped at ``scale`` times
    the learning rate, schedule included, and able to step a subset of the variables it was
    built over on JAX too; set ``head_scale`` and call ``mark_head`` once the optimizer is
    built, ``mark_training`` whenever the trainable layers change. Keras's ``fit`` has no
    per-variable rate; ``update_step`` receives each variable with the rate on every backend,
    so the scale is applied there. Decoupled weight decay still follows ``learning_rate``."""
    import keras

    class HeadRate(base):
        head_scale = 1.0
        _head: frozenset = frozenset()
        _training: tuple | None = None  # indices: a list of variables would join its own

        def mark_head(self, variables) -> None:
            """Remember which of the built optimizer's variables are the head's."""
            self._head = frozenset(self._get_variable_index(v) for v in variables)

        def mark_training(self, variables) -> None:
            """Remember the variables that train now (the model's, in its order)."""
            self._training = tuple(self._get_variable_index(v) for v in variables)

        def update_step(self, gradient, variable, learning_rate):
            if self._get_variable_index(variable) in self._head:
                learning_rate = learning_rate * self.head_scale
            return super().update_step(gradient, variable, learning_rate)

        def stateless_apply(self, optimizer_variables, grads, trainable_variables):
            # JAX's fit passes the values of the variables that train now only, and Keras's
            # own stateless_apply wants all it was built over; its stateful apply (TF's) takes
            # a subset, so map the values onto the variables that train and apply that.
            if self._training is None or len(trainable_variables) == len(
                    self._trainable_variables):
                return super().stateless_apply(optimizer_variables, grads,
                                               trainable_variables)
            training = [self._trainable_variables[i] for i in self._training]
            mapping = [*zip(training, trainable_variables),
                       *zip(self.variables, optimizer_variables)]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                self.apply(grads, training)
            return ([scope.get_current_value(v) for v in training],
                    [scope.get_current_value(v) for v in self.variables])

    HeadRate.__name__ = HeadRate.__qualname__ = f"HeadRate{base.__name__}"
    return HeadRate


def phases(t: ir.Training, done: int) -> list[tuple[int, int]]:
    """The epoch ranges ``[first, last)`` to fit in one go from epoch ``done``: split where
    the frozen stages unfreeze."""
    cut = t.unfreeze_after
    if cut and done < cut < t.epochs:
        return [(done, cut), (cut, t.epochs)]
    return [(done, t.epochs)] if done < t.epochs else []


def describe(compiled) -> str | None:
    """The line training prints first about fine-tuning (None when it does none): the frozen
    stages and until when, the head's rate, and a note when the frozen stages are random."""
    t = compiled.network.training
    parts = []
    if t.freeze:
        until = (f"for {t.unfreeze_after} epoch(s), trained from epoch {t.unfreeze_after + 1} "
                 "on (unfreeze_after)" if t.unfreeze_after else "throughout")
        parts.append(f"{', '.join(t.freeze)} frozen {until}")
        if source_of(compiled.resolved) is None:
            parts.append("note: there is no weights.from, so the frozen stages keep their "
                         "random initial weights")
    if t.head_learning_rate is not None:
        parts.append(f"head at learning rate {t.head_learning_rate:g}, the rest at "
                     f"{t.learning_rate:g}")
    return "fine-tuning: " + "; ".join(parts) if parts else None


def unfreezes_at(t: ir.Training, epoch: int) -> bool:
    """Whether the frozen stages first train in epoch ``epoch`` (0-based)."""
    return bool(t.freeze) and bool(t.unfreeze_after) and epoch == t.unfreeze_after


def left_frozen(t: ir.Training, done: int) -> str | None:
    """What to say when a run ended (early stopping, pruning) after ``done`` epochs, before
    its frozen stages were unfrozen; None when it reached the unfreeze or has none."""
    if not (t.freeze and t.unfreeze_after) or done > t.unfreeze_after or done >= t.epochs:
        return None
    return (f"the run ended after epoch {done}, before epoch {t.unfreeze_after + 1} where "
            f"{', '.join(t.freeze)} would have been unfrozen: they stayed frozen throughout")


def frozen_layers(model, t: ir.Training) -> list:
    """The model's layers in the stages ``training.freeze`` names."""
    stages = set(t.freeze)
    return [layer for layer in model.layers if stage_of(layer.name) in stages]


def start(model, t: ir.Training) -> None:
    """Build the optimizer over every weight that trains in some phase (all of them; a
    restored run's is built already) and mark the head's for its own rate."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    inner = _inner(optimizer)
    if hasattr(inner, "mark_head") and t.head_learning_rate is not None:
        inner.head_scale = t.head_learning_rate / t.learning_rate
        inner.mark_head([v for layer in model.layers if is_head(layer.name)
                         for v in layer.trainable_weights])


def _inner(optimizer):
    """The optimizer that steps the weights (mixed precision wraps it in a loss scaler)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


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
        inner = _inner(model.optimizer)
        if hasattr(inner, "mark_training"):
            inner.mark_training(model.trainable_variables)
        recompile(model)
    return changed


def recompile(model) -> None:
    """Compile ``model`` again with the same optimizer (its state kept), loss, metrics and
    settings, so Keras trains the variables that are trainable now."""
    import keras  # here, as everywhere in train/: importing the package must not start TensorFlow
    config = model.get_compile_config()
    model.compile(optimizer=model.optimizer, loss=model.loss,
                  metrics=[keras.metrics.deserialize(m) for m in config["metrics"] or ()],
                  steps_per_execution=config["steps_per_execution"],
                  jit_compile=config["jit_compile"])
