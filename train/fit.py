"""Checked blueprint + data source → a trained run directory, resumable after any kill.

One training contract (model, optimizer, loss, metrics, run-directory callback) serves two
drivers: Keras ``fit`` here, and the distributed step in ``train.multiworker``.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnbp.builder import Compiled, compile_source
from cnnbp.builder.source import Source, read
from cnnbp.contract import records
from cnnbp.contract.errors import ArtifactError, UsageError
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import (SAMPLE_BYTES, SAMPLE_ROWS, RunDir, RunState, check_new,
                                   creating, resumable)

from . import device as devices
from .images import BadImages, raise_for
from .pipeline import Pipelines, check_readable, make_pipelines
from .plots import write_plots
from .progress import EpochBar, say
from .sources import check_against, load_source
from .stats import fit_preprocessing, sample_rows

if TYPE_CHECKING:  # the report's record; imported when a run finishes
    from cnnbp.report.html import Drawn

log = logging.getLogger(__name__)

MIN_DELTA = 1e-4  # a smaller fall in the watched loss does not count as an improvement


@dataclass
class Session:
    """Everything one training run needs, prepared the same way for both drivers."""

    compiled: Compiled
    run: RunDir
    data_spec: str
    pipelines: Pipelines
    prep: Preprocessing
    class_names: tuple[str, ...]
    device: devices.Device
    state: RunState
    best_weights: list | None = None  # in memory; saved with each epoch's state
    summary: str = ""  # the data it reads, printed before the first epoch
    held: int | None = None  # the run's lock (RunDir.hold), let go when training ends


def prepare(compiled: Compiled, data_spec: str, out: str | Path, resume: bool = False,
            device: devices.Device | None = None, replace: bool = False) -> Session:
    """Load data, fit normalization, write the run's fixed files; or reload them to resume.
    ``replace`` lets a new run take the place of an earlier one at ``out`` (``--force``).

    Image folders and TFRecord shards are listed here, not decoded: the mean and std come
    from a bounded sample, the run's samples.npz from the first few files.
    """
    from cnnbp.builder.tf_env import import_keras
    keras = import_keras()

    run = RunDir(out)
    net = compiled.network
    t = net.training
    keras.utils.set_random_seed(t.seed)
    device = device or devices.configure(t.mixed_precision, t.deterministic, t.xla)
    data = load_source(data_spec, net.input_shape, net.classes)
    check_readable(data, device.backend)
    # labels renumbered by class name: the model's outputs follow the blueprint's class_names
    data = check_against(data, net.input_shape, net.classes, net.class_names)
    names = data.class_names
    bad = BadImages(t.skip_bad_images)
    if resume:
        prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
        if tuple(prep.class_names) != tuple(names):  # the outputs would change meaning
            raise ArtifactError(run.path / "preprocess.json", f"the run's outputs are the "
                                f"classes [{', '.join(prep.class_names)}] but {data_spec} with "
                                f"this blueprint gives [{', '.join(names)}]; resume with the "
                                "data and blueprint the run was started with, or start a new "
                                "run")
        state = run.read_state()
    else:
        shape = list(net.input_shape)
        domain = "signal" if len(shape) == 2 else \
            "image" if data.raw_max and shape[-1] in (1, 3) else "tensor"
        extra = {"resize": t.resize} if domain == "image" else {}
        prep, note = fit_preprocessing(data, net, bad, input_shape=shape, domain=domain,
                                       raw_max=data.raw_max if domain == "image" else None,
                                       scale=data.scale, class_names=list(names), **extra)
        log.info("normalisation: %s", note)
        x_test, y_test, x_cal = sample_rows(data, prep, net, bad, _sample_count(net))
        state = RunState(data=data_spec, data_source=data.source, normalization=note)
        with creating(out, replace) as fresh:  # the folder appears with its state, or not at all
            fresh.write_blueprint(compiled.resolved)
            fresh.write_labels(names)
            prep.write(fresh / "preprocess.json")
            fresh.write_samples(x_test, y_test, x_cal)
            fresh.write_state(state)
    held = run.hold()  # a second `--resume` of this run, started beside it, stops here
    try:
        # GPUs draw array batches on several threads so the host keeps up; a CPU trains on
        # its cores
        pipelines = make_pipelines(data, prep, net, bad, device.backend,
                                   4 if device.gpus else 1)
        session = Session(compiled, run, data_spec, pipelines, prep, names, device, state,
                          held=held)
        session.summary = data_summary(data, names, session.pipelines)
    except BaseException:
        session_release(held)
        raise
    return session


def session_release(held: int | None) -> None:
    """Let the run go (``RunDir.hold``'s descriptor)."""
    if held is not None:
        os.close(held)


def data_summary(data, names, pipelines: Pipelines) -> str:
    """What training is about to read: the source, the split, and the samples per class."""
    train_labels = getattr(data, "train_labels", getattr(data, "y_train", None))
    test_labels = getattr(data, "test_labels", getattr(data, "y_test", None))
    k = len(names)
    train_counts = np.bincount(np.asarray(train_labels, "int64"), minlength=k)
    test_counts = np.bincount(np.asarray(test_labels, "int64"), minlength=k)
    held = len(train_labels) - pipelines.train_size
    shown = ", ".join(f"{n} {a}/{b}" for n, a, b in zip(names[:12], train_counts, test_counts))
    more = f", … ({k - 12} more classes)" if k > 12 else ""
    return (f"data: {data.source}\n  {pipelines.train_size:,} training, {held:,} validation "
            f"(held out of them), {pipelines.test_size:,} test samples; cache "
            f"{pipelines.cache}\n  per class (train+validation/test): {shown}{more}")


def _sample_count(net) -> int:
    """As many rows as ``RunDir.write_samples`` keeps, so no more are decoded."""
    row = 4 * int(np.prod(net.input_shape))
    return max(1, min(SAMPLE_ROWS, SAMPLE_BYTES // row))


def compile_model(session: Session):
    """The model with its optimizer, loss and metrics (fresh, or restored to resume)."""
    import keras
    from cnnbp.builder.keras_builder import build_model

    from . import schedules
    net = session.compiled.network
    t = net.training
    with session.device.strategy.scope():
        model = build_model(net)
        steps = max(1, -(-session.pipelines.train_size // t.batch_size))
        model.compile(optimizer=schedules.optimizer(t, steps),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                      steps_per_execution=session.device.steps_per_execution,
                      jit_compile=session.device.jit_compile)
        if session.state.checkpoint:
            restore_state(session, model)
    return model


def checkpoint_arrays(model, weights: list, best_weights: list | None) -> dict:
    """One epoch's checkpoint as named arrays: ``weights``, the optimizer's variables and the
    best weights, which are stored once when they are this epoch's (then ``best_is_w``)."""
    import keras
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"o{i}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    if best_weights is weights:
        arrays["best_is_w"] = np.array(True)
    else:
        arrays.update({f"b{i}": w for i, w in enumerate(best_weights or [])})
    return arrays


def write_checkpoint(run: RunDir, name: str, arrays: dict) -> None:
    """``arrays`` as ``RUN/name`` (an .npz), whole or not at all."""
    from cnnbp.contract.atomic import atomic_path
    with atomic_path(run.path / name) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def restore_state(session: Session, model) -> None:
    """Put a saved epoch's weights and optimizer state back (see ``checkpoint_arrays``).

    A checkpoint that is missing, cut short, or not this net's is an ``ArtifactError``.
    """
    path = session.run.checkpoint_file(session.state)
    try:
        with np.load(path, allow_pickle=False) as z:
            pick = lambda prefix: [z[f"{prefix}{i}"] for i in range(
                sum(1 for k in z.files if k[0] == prefix and k[1:].isdigit()))]
            weights, optimizer, best = pick("w"), pick("o"), pick("b")
            if "best_is_w" in z.files:
                best = weights
    except FileNotFoundError:
        raise ArtifactError(path, "the checkpoint that state/state.json names is missing") \
            from None
    except Exception as exc:  # zipfile, pickle and format errors all mean a damaged file
        raise ArtifactError(path, f"the checkpoint cannot be read ({type(exc).__name__}: "
                                  f"{exc}); it is damaged") from None
    expected = [tuple(w.shape) for w in model.weights]
    for name, arrays in (("weights", weights), ("best weights", best or weights)):
        shapes = [tuple(a.shape) for a in arrays]
        if shapes != expected:
            i = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), None)
            differ = f"{len(arrays)} arrays, the net has {len(expected)}" if i is None else \
                f"array {i} is {list(shapes[i])}, the net's is {list(expected[i])}"
            raise ArtifactError(path, f"the checkpoint's {name} do not fit this run's net "
                                      f"({differ}): it belongs to another run")
    model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    if len(optimizer) != len(model.optimizer.variables) or any(
            tuple(v.shape) != a.shape for v, a in zip(model.optimizer.variables, optimizer)):
        raise ArtifactError(path, "the checkpoint's optimizer state does not fit this run's "
                                  "optimizer: it belongs to another run")
    for variable, value in zip(model.optimizer.variables, optimizer):
        variable.assign(value)
    session.best_weights = best or None


def layer_seeds(model) -> list:
    """(state variable, first seed) of each random layer's generator (dropout's): the state
    is (seed, draws so far), the model's variables beside its weights, never checkpointed."""
    import keras
    weights = {id(v) for v in model.weights}
    return [(v, int(keras.ops.convert_to_numpy(v)[0])) for v in model.variables
            if id(v) not in weights and v.name == "seed_generator_state"]


def reseed(seeds: list, epoch: int) -> None:
    """Start each generator of ``layer_seeds`` on a state made of its seed and ``epoch``, so
    what an epoch's dropout draws does not depend on how many steps ran before it in this
    process: a resumed process draws what the uninterrupted one did."""
    import keras
    for variable, seed in seeds:
        start = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0]
        variable.assign(np.array([start & 0x7FFFFFFF, 0],
                                 keras.backend.standardize_dtype(variable.dtype)))


def make_callback(session: Session, model, echo: bool = False):
    """The run-directory callback: epoch state, history, best weights, early stopping; with
    ``echo``, one line per epoch (Keras's bar counts steps in chunks of steps_per_execution,
    so it can show 48/41)."""
    import keras

    run, state = session.run, session.state
    patience = session.compiled.network.training.early_stopping
    seeds = layer_seeds(model)

    class RunCallback(keras.callbacks.Callback):
        """Each epoch's checkpoint, then its state (the commit point), are written on one
        thread, in order, while the next epoch trains: a VGG-11 checkpoint (weights, Adam's
        two moments, best weights: 1.5-2 GB) took 6.5 s to write here, several GPU epochs.
        One commit is in flight at most; ``flush`` waits for it and raises its error."""

        def __init__(self):
            super().__init__()
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
            self.pending = None

        def flush(self):
            if self.pending is not None:
                self.pending.result()  # interrupted here (Ctrl-C), it is still pending
                self.pending = None

        def close(self):
            """The last commit, then the writer's thread let go."""
            try:
                self.flush()
            finally:
                self.writer.shutdown(wait=False)

        def on_train_end(self, logs=None):
            self.close()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            # what this epoch draws, from the seed and the epoch alone (a resume draws alike)
            session.pipelines.start_epoch(epoch)
            reseed(seeds, epoch)
            # the rate the epoch starts training with; read at its end, a cosine schedule's
            # last epoch would show 0.0
            self.rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            row = {"epoch": epoch + 1, **logs, "learning_rate": self.rate,
                   "seconds": round(time.perf_counter() - self.started, 3)}
            watched = logs.get("val_loss", logs.get("loss"))
            weights = model.get_weights()  # host copies: training on does not change them
            if state.best is None or watched < state.best - MIN_DELTA:
                state.best, state.wait = watched, 0
                session.best_weights = weights
            else:
                state.wait += 1
            self.flush()  # the previous epoch's commit, before this one's
            arrays = checkpoint_arrays(model, weights, session.best_weights)
            checkpoint = f"state/epoch-{epoch + 1}.npz"
            state.history.append(row)
            state.train_seconds += row["seconds"]
            state.samples_seen += session.pipelines.train_size
            state.checkpoint, state.epoch = checkpoint, epoch + 1
            if patience and state.wait >= patience:
                state.stopped_early = True
                model.stop_training = True
            line = None
            if echo:
                figures = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
                line = (f"epoch {epoch + 1}/{session.compiled.network.training.epochs}: "
                        f"{figures}, learning rate {self.rate:.3g}, {row['seconds']:.1f} s"
                        + (" — stopping early" if state.stopped_early else ""))
            self.pending = self.writer.submit(_commit, run, checkpoint, arrays,
                                              state.model_copy(deep=True), line)

    return RunCallback()


def _flush_beside(callback) -> None:
    """Let the last completed epoch's commit finish while another error is on its way out;
    a failure of the commit itself is logged, not raised over that error."""
    try:
        callback.close()
    except Exception as exc:  # noqa: BLE001  (the error being raised is the one to report)
        log.warning("the last epoch's checkpoint was not written: %s", exc)


def _commit(run: RunDir, checkpoint: str, arrays: dict, state: RunState,
            line: str | None) -> None:
    """One epoch's checkpoint, then the state naming it: resume starts from here. ``line``,
    the epoch's echo, is printed once it has been saved."""
    write_checkpoint(run, checkpoint, arrays)
    run.write_state(state)
    run.write_history(state.history)
    for stale in (run.path / "state").glob("epoch-*.npz"):  # a kill may have left some
        if stale.name != Path(checkpoint).name:
            stale.unlink(missing_ok=True)
    if line:
        try:
            say(line)
        except BrokenPipeError:  # the checkpoint is saved; the CLI meets the closed pipe next
            pass


def finish(session: Session, model, wall_started: float, explain: bool = False
           ) -> tuple[TrainMetrics, Drawn]:
    """Write model.keras, metrics.json and the plots; return the metrics and the pictures
    drawn. ``explain`` draws the report's explain figures on a thread
    beside the test evaluation: they read only model.keras and samples.npz."""
    import keras
    from cnnbp.builder.keras_builder import build_model
    # An image folder's pixel cache and any disk cache go before the test evaluation, whose
    # stream keeps none: the run's peak memory was that cache plus the evaluation's buffers
    # (docs/benchmarks.md). tf.data's own memory cache (TFRecords, mapped arrays) stays with
    # its dataset.
    session.pipelines.close()
    net = session.compiled.network
    # The saved models are float32 whatever the training policy (mixed precision keeps float32
    # master weights), so they export like any other; uncompiled: weights, no optimizer.
    keras.mixed_precision.set_global_policy("float32")
    final = build_model(net)
    best = session.best_weights or model.get_weights()
    final.set_weights(best)
    session.run.save_model(final, "best.keras")
    if not session.state.stopped_early:
        final.set_weights(model.get_weights())
    session.run.save_model(final, "model.keras")
    explaining = _explain_beside(session.run.path) if explain else None
    try:
        return _evaluate(session, final, wall_started, explaining)
    except BaseException:
        if explaining is not None:  # nothing of this run keeps running behind the error
            explaining.cancel()
            wait([explaining])
        raise


def _evaluate(session: Session, final, wall_started: float, explaining):
    """``finish`` from the test evaluation on: metrics.json, the charts, the drawn pictures."""
    from cnnbp.report.html import Drawn

    from .evaluate import classification_report
    net = session.compiled.network
    probabilities, labels = _predict(final, session.pipelines)
    seconds = session.state.train_seconds
    bad = session.pipelines.bad
    metrics = TrainMetrics(
        **classification_report(probabilities, labels, session.class_names),
        blueprint=net.name, run_dir=str(session.run.path),
        data=session.state.data_source or session.data_spec,
        epochs=session.state.epoch, stopped_early=session.state.stopped_early,
        train_samples=session.pipelines.train_size, train_seconds=round(seconds, 3),
        images_per_second=round(session.state.samples_seen / seconds, 1) if seconds else None,
        wall_seconds=round(time.perf_counter() - wall_started, 3),
        device=session.device.name, mixed_precision=session.device.mixed_precision,
        versions=_versions(), skipped_images=len(bad.files), skipped_files=bad.named,
        cache=session.pipelines.cache, normalization=session.state.normalization,
        deterministic=session.device.deterministic, backend=session.device.backend,
        xla=session.device.jit_compile)
    metrics.write(session.run / "metrics.json")
    wait([explaining] if explaining else [])  # before matplotlib draws on this thread
    curves, confusion = write_plots(session.run, session.state.history,
                                    metrics.confusion_matrix, session.class_names)
    explained = explaining.result() if explaining else None  # its error, after the charts
    return metrics, Drawn(curves, confusion, explained)


def _explain_beside(run_path):
    """The explain figures of ``run_path``, drawn on a thread (a Future).

    They draw with matplotlib's object API, which keeps no global state (unlike pyplot), and
    probe their own copy of the model; the test evaluation's TensorFlow ops release the GIL,
    so the two overlap on the cores.
    """
    from cnnbp.report.explain import figures
    pool = ThreadPoolExecutor(1, thread_name_prefix="explain")
    try:
        return pool.submit(figures, run_path)
    finally:
        pool.shutdown(wait=False)


def _predict(model, pipelines: Pipelines) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels over the test stream, batch by batch."""
    probabilities, labels = [], []
    with raise_for(pipelines.bad):
        for x, y in pipelines.test:
            probabilities.append(np.asarray(model.predict_on_batch(np.asarray(x)), "float32"))
            labels.append(np.argmax(np.asarray(y), axis=-1))
    if not probabilities:
        return np.zeros((0, 1), "float32"), np.zeros((0,), "int64")
    return np.concatenate(probabilities), np.concatenate(labels).astype("int64")


def train(compiled: Compiled, data_spec: str, out: str | Path, quiet: bool = False,
          callbacks=(), report: bool = True, replace: bool = False) -> TrainMetrics:
    """Train a checked blueprint into a new run directory with Keras ``fit``.

    ``callbacks`` are extra Keras callbacks (a search's pruning); ``report`` writes the run's
    ``report.html`` with its explain figures at the end; ``replace`` swaps out an earlier run at
    ``out`` once the new one has its first state.
    """
    started = time.perf_counter()
    check_new(RunDir(out), replace)  # before any data is loaded
    return _fit(prepare(compiled, data_spec, out, replace=replace), quiet, callbacks, report,
                started)


def resume(out: str | Path, quiet: bool = False, epochs: int | None = None) -> TrainMetrics:
    """Continue an interrupted run from its last completed epoch; ``epochs`` extends (or
    shortens, down to what is done) the run's total, finished or not."""
    started = time.perf_counter()
    run = resumable(out)
    state = run.read_state()
    compiled = compile_source(read(str(run / "blueprint.yaml")))
    planned = compiled.network.training.epochs
    if epochs is not None and epochs != planned:
        if epochs < state.epoch:
            raise UsageError(f"--epochs {epochs}: {run.path} has already trained {state.epoch} "
                             f"epochs; give {state.epoch} or more")
        if state.stopped_early:
            raise UsageError(f"--epochs {epochs}: {run.path} stopped early at epoch "
                             f"{state.epoch} (no val_loss improvement for "
                             f"{compiled.network.training.early_stopping} epochs); train a new "
                             "run with more patience instead")
        resolved = {**compiled.resolved,
                    "training": {**(compiled.resolved.get("training") or {}), "epochs": epochs}}
        compiled = compile_source(Source(resolved, str(run / "blueprint.yaml")))
        run.write_blueprint(compiled.resolved)  # a learning-rate schedule now spans the new total
    session = prepare(compiled, state.data, out, resume=True)
    total = compiled.network.training.epochs
    if state.epoch < total and not state.stopped_early:  # printed under --quiet as well
        print(f"resuming from epoch {state.epoch + 1} of {total} ({run.path})", flush=True)
    else:  # nothing to train: say so, rather than quietly redo the end
        why = "stopped early" if state.stopped_early else "finished"
        print(f"{run.path} has {why} after {state.epoch} of {total} epochs: evaluating it "
              f"again and rewriting its metrics and report (give --epochs N to train further)",
              flush=True)
    return _fit(session, quiet, started=started)


def _fit(session: Session, quiet: bool, callbacks=(), report: bool = True,
         started: float | None = None) -> TrainMetrics:
    """``started``: when the caller began (before ``prepare``), for ``wall_seconds``."""
    started = started or time.perf_counter()
    t = session.compiled.network.training
    model = compile_model(session)
    done = session.state.epoch
    if not quiet:
        print(session.summary, flush=True)
    if t.tensorboard:  # a resumed run appends to the same logs
        from . import tensorboard
        callbacks = [*callbacks, tensorboard.keras_callback(session.run)]
    run_callback = make_callback(session, model, echo=not quiet)
    if not quiet:  # a bar within each epoch, on a terminal
        callbacks = [*callbacks, EpochBar(session.pipelines.train_size, t.batch_size, t.epochs)]
    try:
        if done < t.epochs and not session.state.stopped_early:
            with raise_for(session.pipelines.bad), warnings.catch_warnings():
                # Skipping bad images leaves the epoch's length unknown, so Keras learns it by
                # running out of data in the first epoch and warns that it did; expected here.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.fit(session.pipelines.train,
                          validation_data=session.pipelines.validation,
                          epochs=t.epochs, initial_epoch=done, verbose=0,
                          shuffle=False,  # the pipeline shuffles, seeded
                          callbacks=[run_callback, *callbacks])
        # the explain figures probe the model with TensorFlow; `cnnbp report RUN` adds them
        explain = report and session.device.backend == "tensorflow"
        if not quiet:  # fit has printed its last epoch's line: the test phase is not silent
            say(f"evaluating on {session.pipelines.test_size:,} test samples"
                + (", then writing the report" if report else ""))
        metrics, drawn = finish(session, model, started, explain)
        if t.tensorboard:  # graph, inputs and charts beside Keras's scalars and histograms
            tensorboard.write_model(session.run, model, session.prep, {
                "curves": drawn.curves, "confusion matrix": drawn.confusion},
                session.state.epoch)
    except BaseException:
        _flush_beside(run_callback)
        raise
    finally:
        session.pipelines.close()
        session_release(session.held)
        session.held = None
    if report:  # after the data is closed: the page reads only the run's files
        from cnnbp.report import write_run_report
        write_run_report(session.run.path, explain=explain, drawn=drawn)
    return metrics


def _versions() -> dict:
    import sys

    import keras
    found = {"keras": keras.__version__, "numpy": np.__version__}
    for name in ("tensorflow", "jax"):  # the backend's, and TensorFlow's where tf.data ran
        if name in sys.modules:
            found[name] = sys.modules[name].__version__
    return found
