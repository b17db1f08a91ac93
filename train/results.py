"""A trained model and its session → the run's results: best.keras and model.keras, the test
evaluation in metrics.json, the charts, and (beside the evaluation) the explain figures.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import numpy as np

from cnnbp.contract.metrics import TrainMetrics

from .images import raise_for
from .pipeline import Pipelines
from .plots import write_plots
from .session import Session

if TYPE_CHECKING:  # the report's record; imported when a run finishes
    from cnnbp.report.html import Drawn


def finish(session: Session, model, wall_started: float, explain: bool = False
           ) -> tuple[TrainMetrics, Drawn]:
    """Write model.keras, metrics.json and the plots; return the metrics and the pictures
    drawn. ``explain`` draws the report's explain figures on a thread
    beside the test evaluation: they read only model.keras and samples.npz."""
    import keras

    from cnnbp.builder.keras_builder import build_model
    from cnnbp.builder.tf_env import tensorflow_left_unimported
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
    with tensorflow_left_unimported():  # on JAX: 2.3-2.9 s of import for nothing
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


def steady_images_per_second(history: list[dict], train_size: int) -> float | None:
    """``train_size`` over the median epoch after the first, or None under two epochs."""
    later = [row["seconds"] for row in history[1:]]
    median = statistics.median(later) if later else 0
    return round(train_size / median, 1) if median > 0 else None


def _evaluate(session: Session, final, wall_started: float, explaining):
    """``finish`` from the test evaluation on: metrics.json, the charts, the drawn pictures."""
    from cnnbp.builder import jax_cache
    from cnnbp.report.html import Drawn

    from .evaluate import classification_report
    net = session.compiled.network
    probabilities, labels = predict_test(final, session.pipelines)
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
        precision=session.device.policy,
        versions=_versions(), skipped_images=len(bad.files), skipped_files=bad.named,
        cache=session.pipelines.cache, normalization=session.state.normalization,
        deterministic=session.device.deterministic, backend=session.device.backend,
        xla=session.device.jit_compile, compile_cache=jax_cache.in_use(),
        steady_images_per_second=steady_images_per_second(session.state.history,
                                                          session.pipelines.train_size))
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


def predict_test(model, pipelines: Pipelines) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels over the test stream, batch by batch."""
    probabilities, labels = [], []
    with raise_for(pipelines.bad):
        for x, y in pipelines.test:
            probabilities.append(np.asarray(model.predict_on_batch(np.asarray(x)), "float32"))
            labels.append(np.argmax(np.asarray(y), axis=-1))
    if not probabilities:
        return np.zeros((0, 1), "float32"), np.zeros((0,), "int64")
    return np.concatenate(probabilities), np.concatenate(labels).astype("int64")


def _versions() -> dict:
    import sys

    import keras
    found = {"keras": keras.__version__, "numpy": np.__version__}
    for name in ("tensorflow", "jax"):  # the backend's, and TensorFlow's where tf.data ran
        if name in sys.modules:
            found[name] = sys.modules[name].__version__
    return found
