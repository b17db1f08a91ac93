"""The Keras pruning callback: reports each epoch to the trial, stops when Optuna says so."""
from __future__ import annotations

import numpy as np

from cnnbp.search.pruning import PruningCallback


class FakeTrial:
    def __init__(self, prune_at: int):
        self.reports, self.prune_at = [], prune_at

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return len(self.reports) > self.prune_at


def _fit(keras, trial, epochs=5):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(32) % 2]
    cb = PruningCallback(trial)
    history = model.fit(x, y, validation_data=(x, y), epochs=epochs, verbose=0, callbacks=[cb])
    return cb, history


def test_stops_training_when_the_pruner_says_so(keras):
    trial = FakeTrial(prune_at=2)
    cb, history = _fit(keras, trial)
    assert cb.pruned
    assert len(history.history["loss"]) == 3  # the third epoch's report prunes
    assert [s for s, _ in trial.reports] == [1, 2, 3]  # step = epochs trained
    assert [v for _, v in trial.reports] == history.history["val_accuracy"]


def test_runs_every_epoch_when_never_told(keras):
    trial = FakeTrial(prune_at=99)
    cb, history = _fit(keras, trial)
    assert not cb.pruned and len(history.history["loss"]) == 5
