"""train.lean: a net trained without a run directory trains as its `cnnbp train` run does,
on data loaded and normalised once for every net."""
from __future__ import annotations

import csv

import pytest

from cnnbp.builder.blueprint import compile_data

NET = {
    "name": "lean", "input": [8, 8, 1], "classes": 10,
    "pattern": "CONV-RELU-POOL-DROPOUT-FC-RELU-SOFTMAX",
    "layers": {"CONV": {"filters": 8, "kernel": 3, "padding": "same"},
               "DROPOUT": {"rate": 0.25}, "FC": {"units": 16}},
    "training": {"epochs": 3, "batch_size": 64, "validation_split": 0.1,
                 "learning_rate": 0.003, "schedule": "cosine",
                 "augment": {"translate": 0.1}},
}


def _net(**training):
    return compile_data({**NET, "training": {**NET["training"], **training}})


def _history(run) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize("training", [{}, {"early_stopping": 1, "epochs": 6}],
                         ids=["plain", "early_stopping"])
def test_same_epochs_as_a_run(tmp_path, keras, training):
    """Loss and accuracies epoch by epoch, where early stopping stops, and the test accuracy
    equal those of `cnnbp train`'s run of the same blueprint (the same seed): the same
    order, augmentation, dropout, schedule and weights."""
    import json

    from cnnbp.train.fit import train
    from cnnbp.train.lean import LeanFitter
    compiled = _net(**training)
    train(compiled, "digits", tmp_path / "run", quiet=True, report=False)
    ran = _history(tmp_path / "run")
    fitter = LeanFitter("digits")
    result, model = fitter.fit(compiled)
    assert len(result.history) == len(ran)
    for lean, full in zip(result.history, ran):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert lean[key] == pytest.approx(full[key], rel=1e-5, abs=1e-6), (key, lean, full)
    assert result.val_accuracy == pytest.approx(ran[-1]["val_accuracy"], abs=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert fitter.evaluate(compiled, model) == metrics["test_accuracy"]
    if training:
        assert result.stopped_early == (len(ran) < training["epochs"])


def test_data_is_loaded_once_for_every_net(keras, monkeypatch):
    """Two nets with different learning rates on one fitter: one load, one normalisation fit,
    one set of batches; a net with another batch size gets its own batches, same data."""
    import cnnbp.train.lean as lean
    loads, fits, pipes = [], [], []

    def counting(record, real):
        def wrapped(*a, **k):
            record.append(1)
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(lean, "load_source", counting(loads, lean.load_source))
    monkeypatch.setattr(lean, "fit_preprocessing", counting(fits, lean.fit_preprocessing))
    monkeypatch.setattr(lean, "make_pipelines", counting(pipes, lean.make_pipelines))
    fitter = lean.LeanFitter("digits")
    for training in ({"epochs": 1}, {"epochs": 1, "learning_rate": 0.01},
                     {"epochs": 1, "batch_size": 32}):
        result, _ = fitter.fit(_net(**training))
        assert len(result.history) == 1
    assert (len(loads), len(fits), len(pipes)) == (1, 1, 2)


def test_save_writes_what_the_model_needs(tmp_path, keras):
    """A saved net is its float32 model with the labels and the normalisation it expects,
    and predicts what the trained model predicts."""
    import numpy as np

    from cnnbp.contract.preprocessing import Preprocessing
    from cnnbp.contract.records import read
    from cnnbp.train.lean import LeanFitter
    compiled = _net(epochs=1)
    fitter = LeanFitter("digits")
    _, model = fitter.fit(compiled)
    fitter.save(compiled, model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "model.keras",
                                                          "preprocess.json"]
    assert (tmp_path / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    prep = read(Preprocessing, tmp_path / "preprocess.json", "preprocessing record")
    saved = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(saved.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert len(prep.mean) == 1 and prep.std[0] > 0


def test_needs_run_names_why(keras):
    """Streamed data, freezing and TensorBoard need the run directory; arrays do not."""
    from cnnbp.train.lean import needs_run
    from cnnbp.train.sources import load_source
    data = load_source("digits")
    assert needs_run(_net(), data) is None
    assert "tensorboard" in needs_run(_net(tensorboard=True), data)
