"""A dead worker's trial: found stale by its missing heartbeats, failed, its candidate queued
once more and its half-written run folder removed — or, when its run had finished, its result
recovered as a new trial so that nothing is trained twice."""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path

from .proposer import STATUS
from .trial import COST_KEYS
from .trial_training import TRIAL_FILE

log = logging.getLogger(__name__)


def retry_callback():
    """What a stale trial gets: failed, its candidate queued once more, its folder removed."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryAndClear(RetryHeartbeatStaleTrialCallback(max_retry=1))


def fail_stale(study) -> None:
    """Fail the trials of workers that stopped sending heartbeats; the callback retries them."""
    import warnings

    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class RetryAndClear:
    """Optuna's callback for a dead worker's trial: retry its candidate once (the wrapped
    callback) and remove the run folder it was training into, which nothing will finish —
    unless the run had finished (the worker died before telling Optuna): then its result is
    recovered as a new trial and nothing is trained again."""

    def __init__(self, retry):
        self.retry = retry

    def __call__(self, study, trial) -> None:
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir and finished(Path(run_dir)) is not None:
            recover_finished(study, trial, Path(run_dir))
            return
        self.retry(study, trial)
        if not run_dir:
            return
        try:  # Optuna calls this unguarded: a failed tidy-up must not end a live worker
            if remove_trial_folder(Path(run_dir)):
                log.info("trial %d: its worker died; removed %s", trial.number, run_dir)
        except OSError as exc:
            log.warning("trial %d: its worker died; %s was left (%s)", trial.number, run_dir,
                        exc)


def finished(run: Path) -> dict | None:
    """A trial folder's result when its training finished: ``trial.json`` (a search's lean
    trial) or a full run's metrics.json and history; None when it did not finish."""
    from cnnbp.contract.rundir import RunDir
    if (run / TRIAL_FILE).is_file():
        return json.loads((run / TRIAL_FILE).read_text())
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
        return {"val_accuracy": float(RunDir(run).read_state().history[-1]["val_accuracy"]),
                "test_accuracy": metrics["test_accuracy"], "epochs": metrics["epochs"],
                "pruned": False}
    return None


def recover_finished(study, trial, run: Path) -> None:
    """A dead worker's trial whose training finished: add its result to the study as a
    COMPLETE (or PRUNED) trial (``failed_trial`` names the dead one, as Optuna's retries
    do)."""
    import optuna
    result = finished(run)
    pruned = bool(result.get("pruned"))
    accuracy = result["val_accuracy"]
    attrs = {**trial.user_attrs, STATUS: "pruned" if pruned else "trained",
             "val_accuracy": accuracy, "epochs": result["epochs"],
             "reason": f"recovered from trial {trial.number}, whose worker died after "
                       "training it"}
    if result.get("test_accuracy") is not None:
        attrs["test_accuracy"] = result["test_accuracy"]
    costs = [float(attrs.get(k, math.inf)) for k in attrs.get(COST_KEYS, [])]
    state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE
    study.add_trial(optuna.trial.create_trial(
        state=state, values=None if pruned else [accuracy] + costs, params=trial.params,
        distributions=trial.distributions, user_attrs=attrs,
        intermediate_values=trial.intermediate_values,
        system_attrs={"failed_trial": trial.number}))
    log.info("trial %d: its worker died after training it; result recovered", trial.number)


# What a trial writes: a run's own entries at the top, in state/ its state, checkpoints and lock,
# anywhere the temporaries of an interrupted atomic write (.NAME.<pid>.tmp)
_STATE_FILE = re.compile(r"^(state\.json|epoch-[1-9][0-9]*\.npz|\.lock)$")
_TEMPORARY = re.compile(r"^\..+\.[0-9]+\.(tmp|old)")


def remove_trial_folder(path: Path) -> bool:
    """Remove a dead trial's run folder and the temporaries of its interrupted writes.

    Only what a trial writes goes: an absolute ``.../trials/NNN`` holding nothing but a run's
    own files (one file of anyone else's keeps the whole folder). Returns whether it went.
    """
    from cnnbp.contract.atomic import recover
    from cnnbp.contract.rundir import RUN_ENTRIES, STATE, RunDir
    if not path.is_absolute() or path.parent.name != "trials" or not path.name.isdigit():
        return False
    recover(path)  # a kill inside an atomic write leaves .NNN.<pid>.tmp beside the folder
    if RunDir(path).status() not in ("run", "unstarted", "empty"):
        return False
    for entry in path.iterdir():
        if _TEMPORARY.match(entry.name) or entry.is_symlink():
            continue  # rmtree removes a link, never what it points to
        if entry.name not in RUN_ENTRIES and entry.name != TRIAL_FILE:
            return False
        if entry.name == STATE and any(not (_STATE_FILE.match(f.name) or
                                            _TEMPORARY.match(f.name))
                                       for f in entry.iterdir()):
            return False
        if entry.name == "tensorboard" and any(
                f.is_file() and not f.name.startswith("events.out.tfevents.")
                for f in entry.rglob("*")):
            return False
        if entry.name == "explain":  # trials never explain: `cnnbp report` made it on request
            return False
    shutil.rmtree(path)
    return True
