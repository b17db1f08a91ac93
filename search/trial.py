"""One claimed trial: its candidate trained in the trials' process (``trial_process``, which
runs ``trial_training``) into ``OUT/trials/NNN/`` and told to Optuna; and a net's identity,
so a net already trained in the study is recorded as a repeat rather than trained again."""
from __future__ import annotations

import json
import math
import time

from cnnbp.builder.search_space import SearchSpace
from cnnbp.contract.errors import UsageError

from .candidate import Candidate, judge
from .proposer import STATUS, record
from .sampling import suggest
from .settings import Settings
from .trial_training import Task

COST_KEYS = "cost_keys"  # user attribute: the measures after accuracy in the trial's values
NET_KEY = "net_key"      # user attribute: the trial's ``net_key``, to find repeats


class Trainer:
    """Trains a claimed trial of the shared study into its run directory and tells Optuna."""

    def __init__(self, space: SearchSpace, doc: dict, settings: Settings, latency=None,
                 process=None):
        self.space, self.doc, self.settings, self.latency = space, doc, settings, latency
        self.process = process  # the trials' child process (trial_process.TrialProcess)

    def __call__(self, study, trial, last: bool = False):
        """Train ``trial`` (its values fixed when it was enqueued); return it frozen.
        ``last``: no trial is expected after it in this worker."""
        import optuna
        cand = judge(self.doc, self.space, suggest(trial, self.space, self.doc), self.latency)
        trial.set_user_attr("check_ms", round(cand.check_ms, 3))
        for k, v in cand.measures.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("blueprint", cand.compiled.resolved)
        trial.set_user_attr(COST_KEYS, ["latency_ms" if o == "latency" else o
                                        for o in self.space.objectives[1:]])
        try:
            accuracy, pruned = self._train(study, trial, cand, last)
        except BaseException as exc:  # the search stops; the trial says why in results.csv
            trial.set_user_attr("reason", f"training raised {type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if pruned:
            trial.set_user_attr(STATUS, "pruned")
            epochs = trial.user_attrs.get("epochs")
            trial.set_user_attr("reason", f"stopped early by the {self.space.pruner} pruner "
                                          f"after {epochs} epoch{'s' * (epochs != 1)}")
            return study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        trial.set_user_attr(STATUS, "trained")
        return study.tell(trial, self._values(cand, accuracy))

    def _values(self, cand: Candidate, accuracy: float):
        extra = {"macs": cand.measures.get("macs"), "latency": cand.measures.get("latency_ms")}
        values = [accuracy] + [float(extra[o]) if extra[o] is not None else math.inf
                               for o in self.space.objectives[1:]]
        return values[0] if len(values) == 1 else values

    def _train(self, study, trial, cand: Candidate, last: bool) -> tuple[float, bool]:
        from .trial_process import TrialProcess
        net = cand.compiled.network
        if net.training.validation_split <= 0:
            raise UsageError("search needs held-out data to compare candidates: set "
                             "training.validation_split above 0 (e.g. 0.1)")
        # absolute: the worker that finds this trial dead may run in another directory
        run = (self.settings.out / "trials" / f"{trial.number:03d}").resolve()
        trial.set_user_attr("run_dir", str(run))
        started = time.perf_counter()
        prunes = len(self.space.objectives) == 1 and self.space.pruner != "none"
        task = Task(cand.compiled.resolved, str(run), self.settings.data,
                    full=self.settings.keep, prunes=prunes, quiet=self.settings.quiet)

        def should_stop(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        if self.process is None:
            self.process = TrialProcess()
        outcome = self.process.run(task, should_stop,
                                   lambda accuracy: could_win(study, accuracy, cand, self.space),
                                   last=last)
        trial.set_user_attr("val_accuracy", outcome.val_accuracy)
        if outcome.val_loss is not None:
            trial.set_user_attr("val_loss", outcome.val_loss)
        if outcome.test_accuracy is not None:
            trial.set_user_attr("test_accuracy", outcome.test_accuracy)
        trial.set_user_attr("epochs", outcome.epochs)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return outcome.val_accuracy, outcome.pruned

    def close(self) -> None:
        """Let the trials' process go."""
        if self.process is not None:
            self.process.close()
            self.process = None


def could_win(study, accuracy: float | None, cand: Candidate, space: SearchSpace) -> bool:
    """Whether a trained trial may be the study's best when it ends: no finished trained
    trial is more accurate (one objective) or better on both accuracy and cost (two)."""
    from optuna.trial import TrialState
    if accuracy is None:
        return False
    costs = ["latency_ms" if o == "latency" else o for o in space.objectives[1:]]
    mine = [cand.measures.get(c) for c in costs]
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get(STATUS) != "trained":
            continue
        other = t.user_attrs.get("val_accuracy")
        if other is None:
            continue
        if not costs:
            if other > accuracy:
                return False
            continue
        theirs = [t.user_attrs.get(c) for c in costs]
        if None not in theirs and None not in mine and other >= accuracy and \
                all(a <= b for a, b in zip(theirs, mine)) and \
                (other > accuracy or any(a < b for a, b in zip(theirs, mine))):
            return False
    return True


def net_key(resolved: dict) -> str:
    """The identity of a trained net: its resolved blueprint, training values included."""
    import hashlib
    net = {k: v for k, v in resolved.items() if k not in ("search", "description")}
    return hashlib.sha256(json.dumps(net, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_repeat(study, pending, same: int):
    """Record a candidate whose net trial ``same`` trains or trained: reuse its result."""
    from optuna.trial import TrialState
    earlier = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
        study._study_id, same))
    reuse = {k: earlier.user_attrs[k] for k in ("val_accuracy", "test_accuracy")
             if k in earlier.user_attrs and earlier.state != TrialState.RUNNING}
    return record(study, dict(pending.params), dict(pending.distributions), pending.candidate,
                  "repeat", f"the same net as trial {same}; not trained again", reuse)
