"""An interrupted (or finished) run directory → the same run trained on from its last completed
epoch, with the blueprint, data and settings it was started with (``--epochs`` may extend it).
"""
from __future__ import annotations

import time
from pathlib import Path

from cnnbp.builder import compile_source, load_resolved
from cnnbp.builder.source import Source
from cnnbp.contract.errors import UsageError
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.contract.rundir import resumable

from .fit import run_session
from .session import prepare


def resume(out: str | Path, quiet: bool = False, epochs: int | None = None) -> TrainMetrics:
    """Continue an interrupted run from its last completed epoch; ``epochs`` extends (or
    shortens, down to what is done) the run's total, finished or not."""
    started = time.perf_counter()
    run = resumable(out)
    state = run.read_state()
    compiled = load_resolved(run.path)
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
    return run_session(session, quiet, started=started)
