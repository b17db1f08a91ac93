"""Checked blueprint + data source → a trained run directory, resumable after any kill.

One training contract (model, optimizer, loss, metrics, run-directory callback) serves two
drivers: Keras ``fit`` here, and the distributed step in ``train.multiworker``. The parts
live apart: ``session`` (data, normalisation, the run's fixed files, the model),
``checkpoints``, ``callback`` (each epoch's commit), ``results`` (models, metrics, charts)
and ``resume``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

from cnnbp.builder import Compiled
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.contract.rundir import RunDir, check_new

from . import finetune
from .callback import flush_beside, layer_seeds, make_callback
from .images import raise_for
from .progress import EpochBar, say
from .results import finish
from .session import Session, compile_model, prepare, release

__all__ = ["compile_model", "finish", "make_callback", "prepare", "run_session", "train"]


def train(compiled: Compiled, data_spec: str, out: str | Path, quiet: bool = False,
          callbacks=(), report: bool = True, replace: bool = False) -> TrainMetrics:
    """Train a checked blueprint into a new run directory with Keras ``fit``.

    ``callbacks`` are extra Keras callbacks (a search's pruning); ``report`` writes the run's
    ``report.html`` with its explain figures at the end; ``replace`` swaps out an earlier run at
    ``out`` once the new one has its first state.
    """
    started = time.perf_counter()
    check_new(RunDir(out), replace)  # before any data is loaded
    session = prepare(compiled, data_spec, out, replace=replace)
    return run_session(session, quiet, callbacks, report, started)


def run_session(session: Session, quiet: bool, callbacks=(), report: bool = True,
                started: float | None = None) -> TrainMetrics:
    """Train a prepared session (new or resumed) to its last epoch with Keras ``fit``, then
    write its results and report; ``started``: when the caller began (before ``prepare``),
    for ``wall_seconds``."""
    started = started or time.perf_counter()
    t = session.compiled.network.training
    model = compile_model(session)
    done = session.state.epoch
    if not quiet:
        print(session.summary, flush=True)
        if line := finetune.describe(session.compiled):
            print(line, flush=True)
    if t.tensorboard:  # a resumed run appends to the same logs
        from . import tensorboard
        callbacks = [*callbacks, tensorboard.keras_callback(session.run)]
    seeds = layer_seeds(model)  # the first seeds: the run's, whatever epoch it resumes at
    run_callback = make_callback(session, model, echo=not quiet, seeds=seeds)
    if not quiet:  # a bar within each epoch, on a terminal
        callbacks = [*callbacks, EpochBar(session.pipelines.train_size, t.batch_size, t.epochs)]
    try:
        with session.device.strategy.scope():  # (MirroredStrategy's variables, several GPUs)
            finetune.start(model, t)
        # one fit per fine-tuning phase: Keras takes a change of trainable layers at compile
        for first, last in finetune.phases(t, done):
            if session.state.stopped_early or model.stop_training:  # (a search's pruning)
                break
            with session.device.strategy.scope():
                finetune.enter(model, t, first)
            if first > done:  # the previous fit's callback let its writer go at its end
                run_callback = make_callback(session, model, echo=not quiet, seeds=seeds)
            with raise_for(session.pipelines.bad), warnings.catch_warnings():
                # Skipping bad images leaves the epoch's length unknown, so Keras learns it by
                # running out of data in the first epoch and warns that it did; expected here.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.fit(session.pipelines.train,
                          validation_data=session.pipelines.validation,
                          epochs=last, initial_epoch=first, verbose=0,
                          shuffle=False,  # the pipeline shuffles, seeded
                          callbacks=[run_callback, *callbacks])
        if not quiet and (line := finetune.left_frozen(t, session.state.epoch)):
            say(line)
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
        flush_beside(run_callback)
        raise
    finally:
        session.pipelines.close()
        release(session.held)
        session.held = None
    if report:  # after the data is closed: the page reads only the run's files
        from cnnbp.report import write_run_report
        write_run_report(session.run.path, explain=explain, drawn=drawn)
    return metrics
