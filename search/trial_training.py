"""What the trials' process does with one trial: the ``Task`` it is sent, the net trained into
its folder — lean (``train.lean``), or a full ``cnnbp train`` run directory — and the
``Outcome`` it sends back. Imported by the child; the search's process imports only the two
records and ``TRIAL_FILE``, never TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass

TRIAL_FILE = "trial.json"  # in a trial's folder: its result, the last file written


@dataclass(frozen=True)
class Task:
    """One trial for the child: what to train, where, and how."""
    resolved: dict          # the candidate's resolved blueprint
    run: str                # its folder (absolute)
    data: str               # the --data spec
    full: bool              # a full `cnnbp train` run directory (--keep, or streamed data)
    prunes: bool            # report each epoch to the parent's pruner
    quiet: bool = True


@dataclass(frozen=True)
class Outcome:
    """What the child trained: the last validation accuracy, the test accuracy (None for a
    pruned trial), epochs trained, whether the pruner stopped it, and the last validation
    loss (what breaks a tie between equal accuracies)."""
    val_accuracy: float
    test_accuracy: float | None
    epochs: int
    pruned: bool
    val_loss: float | None = None


def train_in_child(task: Task, parent, fitters: dict) -> Outcome:
    """Train ``task`` in the trials' process; ``parent`` answers the pruner's and the
    could-win questions; ``fitters`` keeps each data spec's ``LeanFitter`` across tasks."""
    from cnnbp.builder.blueprint import compile_data
    from cnnbp.train.lean import LeanFitter, needs_run

    from .pruning import PruningCallback
    compiled = compile_data(task.resolved)
    callbacks = [PruningCallback(parent)] if task.prunes else []
    if task.data not in fitters:
        fitters[task.data] = LeanFitter(task.data)
    fitter = fitters[task.data]
    if task.full or needs_run(compiled, fitter.data(compiled)):
        from cnnbp.contract.rundir import RunDir
        from cnnbp.train import fit
        # a trial's page would cost seconds of figures; `cnnbp report RUN` writes it on request
        metrics = fit.train(compiled, task.data, task.run, quiet=task.quiet,
                            callbacks=callbacks, report=False)
        history = RunDir(task.run).read_state().history
        pruned = any(cb.pruned for cb in callbacks)
        return Outcome(float(history[-1]["val_accuracy"]),
                       None if pruned else metrics.test_accuracy, metrics.epochs, pruned,
                       history[-1].get("val_loss"))
    from cnnbp.contract.atomic import atomic_path, write_json
    from cnnbp.contract.rundir import RunDir
    result, model = fitter.fit(compiled, callbacks)
    pruned = any(cb.pruned for cb in callbacks)
    test = None if pruned else fitter.evaluate(compiled, model)
    # the folder appears whole or not at all: trial.json, last, says the trial finished
    with atomic_path(task.run) as tmp:
        tmp.mkdir(parents=True)
        folder = RunDir(tmp)
        folder.write_blueprint(compiled.resolved)
        folder.write_history(list(result.history))
        if not pruned and parent.could_win(result.val_accuracy):
            fitter.save(compiled, model, tmp)
        write_json(tmp / TRIAL_FILE, {"val_accuracy": result.val_accuracy,
                                      "test_accuracy": test, "epochs": len(result.history),
                                      "pruned": pruned, "seconds": result.seconds,
                                      "backend": fitter.device.backend,
                                      "device": fitter.device.name})
    return Outcome(result.val_accuracy, test, len(result.history), pruned,
                   result.history[-1].get("val_loss") if result.history else None)
