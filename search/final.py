"""The search's last step (``--final-epochs N``): the best trial's net retrained on its training
and validation data together for N epochs into a full run directory, ``OUT/final``, and its
test accuracy recorded in the study, so every worker's summary and ``best.yaml`` show it.

A trial is judged on held-out validation data, which the winner need not hold out any more;
its test accuracy after retraining is the figure to quote. One worker retrains: it claims the
step in the study (the attribute ``cnnbp.final``) under the workers' claim lock; a claim left by
a worker on this host that has died is taken over.
"""
from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

from .outputs import FINAL, best, rows
from .proposer import WORKER


def retrain(study, out: Path, data: str, epochs: int, lock, quiet: bool = True,
            say=print) -> dict | None:
    """Retrain the study's best trial (see module doc); return the study's final record
    (``trial``, ``epochs``, ``status`` running|done, ``test_accuracy``, ``run_dir``), or None
    when no trial trained."""
    top = best(study, rows(study))
    if top is None:
        return None
    with lock:
        record = study.user_attrs.get(FINAL)
        if record and record["trial"] == top.number and record["epochs"] == epochs and (
                record["status"] == "done" or _alive(record["worker"])):
            return record  # done, or being done by a live worker
        record = {"trial": top.number, "epochs": epochs, "status": "running",
                  "worker": WORKER}
        study.set_user_attr(FINAL, record)
    from cnnbp.builder.blueprint import compile_data
    from cnnbp.train.launch import launch
    resolved = copy.deepcopy(top.attrs["blueprint"])
    resolved["training"] = {**resolved.get("training", {}), "epochs": epochs,
                            "validation_split": 0}
    run = (out / "final").resolve()
    say(f"final: trial {top.number}'s net retrained on training + validation data for "
        f"{epochs} epochs into {run}")
    metrics = launch(compile_data(resolved), data, run, quiet=quiet, replace=True)
    record = {**record, "status": "done", "test_accuracy": metrics.test_accuracy,
              "run_dir": str(run)}
    study.set_user_attr(FINAL, record)
    return record


def _alive(worker: str) -> bool:
    """Whether the worker ``host:pid`` may still be running (another host's: assumed so)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
