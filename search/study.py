"""The search's ask/tell loop: a blueprint with a ``search:`` section + data → an Optuna study
whose trials are run dirs, exactly ``--trials`` of them.

An empty space is refused first (``probe``), and ``--data``, before the study is opened
(``opening``). Every candidate comes from the sampling step (``proposer``): one that cannot
work is a record, never a trial. A feasible one is claimed under a lock shared by the workers
(``locks.claim_lock``) and counted on the ``ledger``, so ``--trials`` is the study's exact
total, and trains in ``trial.Trainer``, in the trials' child process (``trial_process``,
started as soon as the space and the data are checked); a net already trained in the study is
recorded as a repeat, not trained again. While a trial trains its heartbeat is recorded, so
that another worker can retry it if this one dies (``recovery``).
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from cnnbp.builder.search_space import SearchSpace

from .locks import claim_lock
from .opening import open_study, startup_trials, worker_seed
from .probe import probe
from .proposer import STATUS, Proposer
from .recovery import fail_stale
from .settings import Settings
from .storage import HEARTBEAT_S, storage_url
from .trial import NET_KEY, Trainer, net_key, record_repeat

log = logging.getLogger(__name__)

MAX_INFEASIBLE_STREAK = 2000  # the sampler keeps proposing the impossible: give up
WAIT_POLL_S = 0.5  # how often a worker with nothing left to start looks at the others' trials


def run(space: SearchSpace, doc: dict, settings: Settings,
        on_trial: Callable[[Any, Any], None] | None = None):
    """Run (or resume) the search until exactly ``settings.trials`` trials of the study have
    trained (counting every worker's) and none is still running, the timeout passes, or the
    sampler proposes only impossible nets; return the study.

    Claims are made under a lock shared by the workers (``claim_lock``), so the total is
    exact: a worker that finds the count reached waits for the others' running trials, and
    trains a dead worker's trial when its retry is queued.
    """
    net = probe(space, doc, settings.seed).compiled.network  # refuse an empty space first
    from cnnbp.train.sources import preload
    # --data problems that need no TensorFlow, before the study or OUT is made
    preload(settings.data, net.input_shape, net.classes, net.class_names)
    if space.min_epochs > net.training.epochs and space.pruner != "none":
        from cnnbp.contract.errors import UsageError
        raise UsageError(f"search.min_epochs is {space.min_epochs} but a trial trains at "
                         f"most training.epochs = {net.training.epochs}: set min_epochs to "
                         f"1..{net.training.epochs}, or raise training.epochs (--epochs)")
    from .trial_process import TrialProcess
    trials = TrialProcess()
    trials.start()  # TensorFlow starts in the trials' process while the study is opened
    try:
        return _search(space, doc, settings, net, trials, on_trial)
    finally:
        trials.close()


def _search(space: SearchSpace, doc: dict, settings: Settings, net, trials, on_trial):
    """``run`` once the space and the data have been checked and the trials' process is
    starting."""
    study, sampler = open_study(space, doc, settings, net.training.epochs)
    latency = None
    if "max_latency_ms" in space.budgets or "latency" in space.objectives:
        from .latency import LatencyCache
        latency = LatencyCache(settings.out / "latency.json")
    import optuna
    warmup = optuna.samplers.RandomSampler(seed=worker_seed(settings))
    proposer = Proposer(space, doc, sampler, latency, warmup,
                        startup_trials(settings) if len(space.objectives) == 1 else 0)
    trainer = Trainer(space, doc, settings, latency, trials)
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    streak, pending = 0, None
    with claim_lock(storage_url(settings)) as lock, contextlib.closing(trainer):
        while deadline is None or time.monotonic() < deadline:
            state = ledger(study)
            if not state.waiting and state.claimed < settings.trials and pending is None:
                pending = proposer.propose(study, MAX_INFEASIBLE_STREAK - streak, on_trial)
                if pending is None:
                    log.warning("the sampler proposed %d infeasible or repeated candidates in "
                                "a row; stopping", MAX_INFEASIBLE_STREAK)
                    break
            trial = None
            with lock:
                fail_stale(study)
                state = ledger(study)
                if state.waiting:
                    trial = _ask(study)  # a dead worker's candidate, queued for its retry
                elif state.claimed < settings.trials and pending is not None:
                    key = net_key(pending.candidate.compiled.resolved)
                    same = state.nets.get(key)
                    if same is None:
                        study.enqueue_trial(pending.params, user_attrs={NET_KEY: key},
                                            skip_if_exists=False)
                        trial = _ask(study)
                    else:
                        frozen = record_repeat(study, pending, same)
                        streak += 1
                        if on_trial:
                            on_trial(study, frozen)
                    pending = None
                if trial is not None:
                    study._storage.record_heartbeat(trial._trial_id)
            if trial is not None:
                streak = 0
                with _heartbeat(study, trial):
                    # the study's last claim: no successor for the trials' process is needed
                    frozen = trainer(study, trial, last=state.claimed + 1 >= settings.trials)
                if on_trial:
                    on_trial(study, frozen)
            elif state.claimed >= settings.trials:
                if not state.running and not state.waiting:
                    break  # the study is complete
                time.sleep(WAIT_POLL_S)  # others' trials still train: their results or death
    return study


@dataclass(frozen=True)
class Ledger:
    """The shared study's trials as the accounting sees them."""
    claimed: int      # trained, pruned, training now, or queued for a retry
    running: int
    waiting: int
    nets: dict        # net key -> the trial number that trains (or trained) it


def ledger(study) -> Ledger:
    """Count the study's claims on ``--trials``: every trial that trained, is training or
    waits for its retry. Records (infeasible, repeat) and dead workers' trials do not count."""
    from optuna.trial import TrialState
    claimed = running = waiting = 0
    nets: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
        elif not (t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                  and t.user_attrs.get(STATUS) in ("trained", "pruned")):
            continue
        claimed += 1
        key = t.user_attrs.get(NET_KEY)
        if key:
            nets.setdefault(key, t.number)
    return Ledger(claimed, running, waiting, nets)


def _ask(study):
    """``study.ask()`` without its warning that heartbeats are meant for ``optimize``: this
    loop records them itself (``_heartbeat``)."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        return study.ask()


@contextlib.contextmanager
def _heartbeat(study, trial):
    """Record the trial's heartbeat every HEARTBEAT_S on a thread while it trains."""
    import threading
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            study._storage.record_heartbeat(trial._trial_id)

    thread = threading.Thread(target=beat, daemon=True, name="search-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
