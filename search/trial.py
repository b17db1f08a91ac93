"""One claimed trial: its candidate trained through ``cnnbp.train.fit.train`` into
``OUT/trials/NNN/`` and told to Optuna; and a net's identity, so a net already trained in the
study is recorded as a repeat rather than trained again."""
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

COST_KEYS = "cost_keys"  # user attribute: the measures after accuracy in the trial's values
NET_KEY = "net_key"      # user attribute: the trial's ``net_key``, to find repeats


class Trainer:
    """Trains a claimed trial of the shared study into its run directory and tells Optuna."""

    def __init__(self, space: SearchSpace, doc: dict, settings: Settings, latency=None):
        self.space, self.doc, self.settings, self.latency = space, doc, settings, latency

    def __call__(self, study, trial):
        """Train ``trial`` (its values fixed when it was enqueued); return it frozen."""
        import optuna
        cand = judge(self.doc, self.space, suggest(trial, self.space, self.doc), self.latency)
        trial.set_user_attr("check_ms", round(cand.check_ms, 3))
        for k, v in cand.measures.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("blueprint", cand.compiled.resolved)
        trial.set_user_attr(COST_KEYS, ["latency_ms" if o == "latency" else o
                                        for o in self.space.objectives[1:]])
        try:
            accuracy, pruned = self._train(trial, cand)
        except BaseException as exc:  # the search stops; the trial says why in results.csv
            trial.set_user_attr("reason", f"training raised {type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if pruned:
            trial.set_user_attr(STATUS, "pruned")
            trial.set_user_attr("reason", "stopped early by the median pruner")
            return study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        trial.set_user_attr(STATUS, "trained")
        return study.tell(trial, self._values(cand, accuracy))

    def _values(self, cand: Candidate, accuracy: float):
        extra = {"macs": cand.measures.get("macs"), "latency": cand.measures.get("latency_ms")}
        values = [accuracy] + [float(extra[o]) if extra[o] is not None else math.inf
                               for o in self.space.objectives[1:]]
        return values[0] if len(values) == 1 else values

    def _train(self, trial, cand: Candidate) -> tuple[float, bool]:
        from cnnbp.builder.tf_env import import_keras
        from cnnbp.contract.rundir import RunDir
        import_keras()  # first, with TensorFlow's start-up noise filtered: train/ imports Keras
        from cnnbp.train import fit

        from .pruning import PruningCallback
        net = cand.compiled.network
        if net.training.validation_split <= 0:
            raise UsageError("search needs held-out data to compare candidates: set "
                             "training.validation_split above 0 (e.g. 0.1)")
        # absolute: the worker that finds this trial dead may run in another directory
        run = (self.settings.out / "trials" / f"{trial.number:03d}").resolve()
        trial.set_user_attr("run_dir", str(run))
        started = time.perf_counter()
        callbacks = [PruningCallback(trial)] if len(self.space.objectives) == 1 else []
        # a trial's page would cost seconds of figures; `cnnbp report RUN` writes it on request
        metrics = fit.train(cand.compiled, self.settings.data, run, quiet=self.settings.quiet,
                            callbacks=callbacks, report=False)
        history = RunDir(run).read_state().history
        accuracy = float(history[-1]["val_accuracy"])
        trial.set_user_attr("val_accuracy", accuracy)
        trial.set_user_attr("test_accuracy", metrics.test_accuracy)
        trial.set_user_attr("epochs", metrics.epochs)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        pruned = any(cb.pruned for cb in callbacks)
        return accuracy, pruned


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
