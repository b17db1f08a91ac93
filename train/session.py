"""A checked blueprint, a data spec and a run directory → the ``Session`` both training drivers
share (data loaded, normalisation fitted, the run's fixed files written, the run held), and
the model it trains (fresh, or restored from the run's last checkpoint to resume).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.builder import Compiled
from cnnbp.builder.weights_normalize import fixed_normalization
from cnnbp.contract import records
from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import SAMPLE_BYTES, SAMPLE_ROWS, RunDir, RunState, creating

from . import device as devices
from .checkpoints import restore_state
from .images import BadImages
from .pipeline import Pipelines, check_readable, make_pipelines
from .sources import check_against, load_source
from .stats import fit_preprocessing, sample_rows

log = logging.getLogger(__name__)


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
    from cnnbp.builder.tf_env import import_keras, set_random_seed
    import_keras()

    run = RunDir(out)
    net = compiled.network
    t = net.training
    set_random_seed(t.seed)
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
        prep, note = fixed_normalization(prep, note, compiled.resolved)
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
        # GPUs draw array batches that take work (normalised or augmented as drawn, or
        # large) on several threads so the host keeps up (train.arrays); a CPU trains on
        # its cores
        pipelines = make_pipelines(data, prep, net, bad, device.backend,
                                   4 if device.gpus else 1)
        session = Session(compiled, run, data_spec, pipelines, prep, names, device, state,
                          held=held)
        session.summary = data_summary(data, names, session.pipelines)
    except BaseException:
        release(held)
        raise
    return session


def release(held: int | None) -> None:
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
    from cnnbp.builder.weights import load_into
    with session.device.strategy.scope():
        model = compile_net(session.compiled.network, session.device,
                            session.pipelines.train_size)
        if session.state.checkpoint:
            session.best_weights = restore_state(session.run.checkpoint_file(session.state),
                                                 model)
        else:  # weights.from starts a new run only: a resumed one keeps what it trained
            load_into(model, session.compiled)
    return model


def compile_net(net, device: devices.Device, train_size: int):
    """``net`` built and compiled as every run trains it (optimizer and schedule, loss,
    metrics, steps per execution), its weights fresh; call inside the device's strategy."""
    import keras

    from cnnbp.builder.keras_builder import build_model

    from . import schedules
    t = net.training
    model = build_model(net)
    steps = max(1, -(-train_size // t.batch_size))
    model.compile(optimizer=schedules.optimizer(t, steps),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                  steps_per_execution=device.steps_per_execution,
                  jit_compile=device.jit_compile)
    return model
