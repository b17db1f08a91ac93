"""Optuna's pruning inside Keras ``fit``: report validation accuracy each epoch, stop when told.

Optuna's integration package has a Keras callback that raises ``TrialPruned`` from inside
``fit``; that would leave the run directory half-written. This one stops training at the
epoch's end instead, so the trial is still a complete run directory, and lets the caller
mark the trial pruned.
"""
from __future__ import annotations


def PruningCallback(trial, monitor: str = "val_accuracy"):
    """A ``keras.callbacks.Callback`` for ``trial`` (built lazily: Keras loads with TF)."""
    from cnnbp.builder.tf_env import import_keras
    keras = import_keras()  # the first import in a search: TensorFlow's start-up noise filtered

    class _Pruning(keras.callbacks.Callback):
        pruned = False

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None:
                return
            trial.report(float(value), epoch + 1)  # step = epochs trained (a resource)
            if trial.should_prune():
                self.pruned = True
                self.model.stop_training = True

    return _Pruning()
