"""What ``cnnbp train`` starts: a new run (across the workers ``TF_CONFIG`` names, or on this
host) or a resumed one, with every check that needs no TensorFlow done before it starts.

TensorFlow takes seconds to start; a run directory that is taken, or data that does not fit
the net, is refused before that (``sources.preload`` keeps the checked data for training).
"""
from __future__ import annotations

from pathlib import Path

from cnnbp.builder import Compiled
from cnnbp.contract.metrics import TrainMetrics


def launch(compiled: Compiled, data_spec: str, out: str | Path, quiet: bool = False,
           replace: bool = False) -> TrainMetrics:
    """Train ``compiled`` on ``data_spec`` into ``out``: with ``train.multiworker`` when
    ``TF_CONFIG`` names several workers, else with Keras ``fit`` once the run directory and
    the data have been checked (``replace``: ``--force``)."""
    from cnnbp.builder.tf_env import import_keras
    from cnnbp.contract.rundir import RunDir, check_new

    from .multiworker import cluster, train_multiworker
    if cluster():
        t = compiled.network.training
        if t.freeze or t.head_learning_rate is not None:
            from cnnbp.contract.errors import UsageError
            raise UsageError(f"TF_CONFIG names {cluster()[0]} workers, and multi-worker "
                             "training trains every layer at learning_rate: training.freeze, "
                             "unfreeze_after and head_learning_rate are for one host; drop "
                             "them or train on one host (unset TF_CONFIG)")
        return train_multiworker(compiled, data_spec, out, quiet=quiet)
    check_new(RunDir(out), replace)
    from .sources import preload
    net = compiled.network
    preload(data_spec, net.input_shape, net.classes, net.class_names)
    import_keras()
    from .fit import train
    return train(compiled, data_spec, out, quiet=quiet, replace=replace)


def relaunch(out: str | Path, quiet: bool = False, epochs: int | None = None) -> TrainMetrics:
    """Resume the run at ``out`` (``--resume``), ``epochs`` its new total if given."""
    from cnnbp.builder.tf_env import import_keras

    from .resume import resume
    import_keras()
    return resume(out, quiet=quiet, epochs=epochs)
