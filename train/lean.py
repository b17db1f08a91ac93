"""Checked nets + one data source → trained Keras models, no run directory: a search's trials.

``cnnbp train`` pays, per run, for loading and checking the data, fitting its normalisation,
writing the run's files and a checkpoint every epoch, the charts and the saved models. A
search trains dozens of nets on the same data and keeps few of them, so ``LeanFitter`` loads
and normalises the data once, keeps the batches for as long as the training settings that
shape them stay the same, and per net only builds, compiles (``session.compile_net``, the
same model and optimizer ``cnnbp train`` makes), fits and evaluates. Each epoch draws its
order, augmentation and dropout from the seed and the epoch as a run does, and early stopping
watches the same loss, so a net trains here as its ``cnnbp train`` run would. Keras's session
is cleared between nets, which keeps memory flat over a long search (``bench/search_overhead.py``).

Data that streams from files (image folders, TFRecords, memory maps), ``training.freeze`` and
TensorBoard logs need the run directory: ``needs_run`` says why, and the search trains those
nets with ``cnnbp train``'s ``fit.train``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cnnbp.builder import Compiled

from . import device as devices
from .callback import MIN_DELTA, layer_seeds, reseed
from .images import BadImages
from .pipeline import make_pipelines, streams
from .sources import check_against, load_source
from .stats import fit_preprocessing


@dataclass(frozen=True)
class LeanResult:
    """One net's training, as a search needs it."""
    history: tuple[dict, ...]       # one row an epoch, the columns of a run's history.csv
    val_accuracy: float | None      # the last epoch's; None without validation data
    stopped_early: bool             # by early stopping or a callback (a search's pruner)
    seconds: float                  # build, compile, fit and evaluation


def needs_run(compiled: Compiled, data) -> str | None:
    """Why ``compiled`` on ``data`` must train as a full run, or None when it can train here."""
    t = compiled.network.training
    if streams(data):
        return "its data streams from files"
    if t.freeze or t.head_learning_rate is not None:
        return "training.freeze and head_learning_rate train in phases"
    if t.tensorboard:
        return "training.tensorboard writes logs into a run directory"
    return None


class LeanFitter:
    """Trains checked nets on one data source, loaded and normalised once."""

    def __init__(self, data_spec: str):
        self.data_spec = data_spec
        self.device: devices.Device | None = None
        self._data: dict = {}       # input key -> the checked data
        self._prep: dict = {}       # data and normalisation key -> its preprocessing
        self._pipelines: dict = {}  # batch-shaping key -> Pipelines

    def data(self, compiled: Compiled):
        """The data for ``compiled``'s input and classes, loaded and checked (then kept)."""
        net = compiled.network
        key = json.dumps([net.input_shape, net.classes, net.class_names], default=str)
        if key not in self._data:
            data = load_source(self.data_spec, net.input_shape, net.classes)
            self._data[key] = check_against(data, net.input_shape, net.classes,
                                            net.class_names)
        return self._data[key]

    def prepared(self, compiled: Compiled):
        """``(data, preprocessing)`` for ``compiled``: the data, and its normalisation fitted
        as a run fits it (on first use, then kept)."""
        data = self.data(compiled)
        net = compiled.network
        weights = (compiled.resolved.get("weights") or {}).get("normalize")
        key = json.dumps([id(data), net.training.resize, weights], default=str)
        if key not in self._prep:
            shape = list(net.input_shape)
            domain = "signal" if len(shape) == 2 else \
                "image" if data.raw_max and shape[-1] in (1, 3) else "tensor"
            extra = {"resize": net.training.resize} if domain == "image" else {}
            prep, note = fit_preprocessing(data, net, BadImages(False), input_shape=shape,
                                           domain=domain,
                                           raw_max=data.raw_max if domain == "image" else None,
                                           scale=data.scale, class_names=list(data.class_names),
                                           **extra)
            from cnnbp.builder.weights_normalize import fixed_normalization
            self._prep[key] = fixed_normalization(prep, note, compiled.resolved)[0]
        return data, self._prep[key]

    def _batches(self, compiled: Compiled):
        data, prep = self.prepared(compiled)
        net, t = compiled.network, compiled.network.training
        key = json.dumps([id(data), t.batch_size, t.validation_split, t.seed,
                          repr(t.augment)], default=str)
        if key not in self._pipelines:
            # several threads draw array batches for a GPU, as in a run
            workers = 4 if self.device.gpus else 1
            self._pipelines[key] = make_pipelines(data, prep, net, BadImages(False),
                                                  self.device.backend, workers)
        return self._pipelines[key]

    def fit(self, compiled: Compiled, callbacks=()) -> tuple[LeanResult, object]:
        """Train ``compiled`` to its last epoch (or until early stopping or a callback stops
        it); return its ``LeanResult`` and the trained Keras model."""
        import keras
        started = time.perf_counter()
        t = compiled.network.training
        if self.device is None:  # the first net's settings configure the process, once
            self.device = devices.configure(t.mixed_precision, t.deterministic, t.xla)
        keras.backend.clear_session()  # the last net's graphs and variables go
        from cnnbp.builder.tf_env import set_random_seed
        set_random_seed(t.seed)
        pipelines = self._batches(compiled)
        from cnnbp.builder.weights import load_into

        from .session import compile_net
        with self.device.strategy.scope():
            model = compile_net(compiled.network, self.device, pipelines.train_size)
            load_into(model, compiled)
        epochs = _EpochCallback(model, pipelines, t.early_stopping)
        model.fit(pipelines.train, validation_data=pipelines.validation, epochs=t.epochs,
                  verbose=0, shuffle=False, callbacks=[epochs, *callbacks])
        if epochs.best_weights is not None and epochs.stopped_early:
            model.set_weights(epochs.best_weights)  # as a run's best.keras
        history = tuple(epochs.history)
        last = history[-1].get("val_accuracy") if history else None
        return LeanResult(history, None if last is None else float(last),
                          bool(epochs.stopped_early or model.stop_training),
                          round(time.perf_counter() - started, 3)), model

    def evaluate(self, compiled: Compiled, model) -> float:
        """The test accuracy of ``model`` (trained by ``fit`` on ``compiled``), counted as a
        run's metrics.json counts it."""
        import numpy as np

        from .results import predict_test
        probabilities, labels = predict_test(model, self._batches(compiled))
        return float(np.mean(np.argmax(probabilities, axis=-1) == labels)) if len(labels) \
            else 0.0

    def save(self, compiled: Compiled, model, folder) -> None:
        """Write ``model`` into ``folder`` as a run keeps it: ``model.keras`` (float32, no
        optimizer), ``labels.txt`` and ``preprocess.json`` (the normalisation it expects)."""
        import keras

        from cnnbp.builder.keras_builder import build_model
        from cnnbp.builder.tf_env import tensorflow_left_unimported
        from cnnbp.contract.rundir import RunDir
        _, prep = self.prepared(compiled)
        run = RunDir(folder)
        run.write_labels(prep.class_names)
        prep.write(run / "preprocess.json")
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")  # as results.finish saves
        try:
            final = build_model(compiled.network)
        finally:
            keras.mixed_precision.set_global_policy(policy)  # the next net trains as before
        final.set_weights(model.get_weights())
        with tensorflow_left_unimported():
            run.save_model(final, "model.keras")


def _EpochCallback(model, pipelines, patience: int):
    """Each epoch drawn from the seed and the epoch (order, augmentation, dropout), its
    history row kept, and early stopping on the watched loss: ``callback.make_callback``'s
    epoch without the run directory's commit."""
    import keras
    seeds = layer_seeds(model)

    class EpochCallback(keras.callbacks.Callback):
        history: list = []
        best = None
        best_weights = None
        wait = 0
        stopped_early = False

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            pipelines.start_epoch(epoch)
            reseed(seeds, epoch)
            self.rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            self.history.append({"epoch": epoch + 1, **logs, "learning_rate": self.rate,
                                 "seconds": round(time.perf_counter() - self.started, 3)})
            if not patience:
                return
            watched = logs.get("val_loss", logs.get("loss"))
            if self.best is None or watched < self.best - MIN_DELTA:
                self.best, self.wait = watched, 0
                self.best_weights = model.get_weights()
            else:
                self.wait += 1
            if self.wait >= patience:
                self.stopped_early = True
                model.stop_training = True

    callback = EpochCallback()
    callback.history = []
    return callback
