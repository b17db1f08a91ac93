"""A blueprint with a ``search:`` section + data → an Optuna study whose trials are run dirs.

Every candidate is checked statically first (``candidate.check``); one that cannot work
completes at once as an infeasible trial and never reaches TensorFlow. Its constraint values
(``Trial.set_constraint``) tell the sampler — TPE, or NSGA-II for two objectives — to stop
proposing its like. A feasible one trains through ``cnnbp.train.fit.train`` into
``OUT/trials/NNN/``, reporting validation accuracy each epoch to Optuna's median pruner. The
study lives in ``OUT/study.db`` (SQLite) unless ``storage`` names another database, so a killed
search resumes and several workers can share one study.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cnnbp.builder.search_space import SearchSpace
from cnnbp.contract.errors import RefusedError, UsageError

from .candidate import CONSTRAINTS, Candidate, check
from .sampling import suggest

log = logging.getLogger(__name__)

PROBE_CANDIDATES = 500     # random candidates tried before refusing a space as empty
MAX_INFEASIBLE_STREAK = 2000  # the sampler keeps proposing the impossible: give up
# A worker silent for 3 heartbeats has died: its trial is retried. CNNBP_SEARCH_HEARTBEAT_S
# shortens it (the kill test waits 3 heartbeats for a dead worker, not 90 s).
_HEARTBEAT = os.environ.get("CNNBP_SEARCH_HEARTBEAT_S", "")
HEARTBEAT_S = max(1, int(_HEARTBEAT)) if _HEARTBEAT.isdigit() else 30
STATUS = "status"          # user attribute: trained | pruned | infeasible


@dataclass(frozen=True)
class Settings:
    """How ``cnnbp search`` runs: data, output folder, trial count and storage."""
    data: str
    out: Path
    trials: int                 # trained trials wanted (static exclusions do not count)
    timeout: float | None = None
    storage: str | None = None  # an RDB URL; default sqlite:///OUT/study.db
    study_name: str = "search"
    seed: int = 0
    quiet: bool = True


def open_study(space: SearchSpace, doc: dict, settings: Settings):
    """Create the study, or load it to resume; refuse one made for another space."""
    import warnings

    import optuna

    if not settings.storage:  # a shared database is opened before OUT is made
        settings.out.mkdir(parents=True, exist_ok=True)
    url = settings.storage or f"sqlite:///{(settings.out / 'study.db').resolve()}"
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _storage(url)
    settings.out.mkdir(parents=True, exist_ok=True)
    directions = ["maximize"] + ["minimize"] * (len(space.objectives) - 1)
    seed = settings.seed
    if settings.storage:  # workers sharing a study must not all propose the same candidates
        import socket
        seed = hash((seed, socket.gethostname(), os.getpid())) % 2**31
    if len(directions) == 1:
        sampler = optuna.samplers.TPESampler(seed=seed,
                                             n_startup_trials=min(10, max(2, settings.trials)))
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    else:
        sampler = optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, settings.trials)))
        pruner = optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner,
                                study_name=settings.study_name, directions=directions,
                                load_if_exists=True)
    fingerprint = {"space": space.to_json(), "blueprint": _stable(doc)}
    found = {k: study.user_attrs.get(k) for k in fingerprint}
    if study.user_attrs and found != fingerprint:
        raise RefusedError(f"{url}: the study {settings.study_name!r} was made for another "
                           "blueprint or search space; pick a new -o (or --study-name) rather "
                           "than mix their trials")
    for k, v in fingerprint.items():
        study.set_user_attr(k, v)
    return study


def _storage(url: str):
    """Optuna's RDB storage with heartbeats, so a dead worker's trial is retried.

    Workers started together race to create Optuna's tables and types, and the loser's DDL
    fails (optuna/optuna#1092: no fix upstream; it advises creating the study first). On
    PostgreSQL the workers take turns under an advisory lock; elsewhere the loser retries
    and finds the tables made.
    """
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError
    try:  # the URL as shown in errors: no password
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise UsageError(f"--storage {url}: not a database URL; give one SQLAlchemy "
                         "reads, e.g. postgresql://user@host/cnnbp or "
                         "sqlite:////path/to/study.db") from None
    for attempt in range(3):
        try:
            with _schema_lock(url, shown):
                return RDBStorage(url, heartbeat_interval=HEARTBEAT_S,
                                  grace_period=3 * HEARTBEAT_S,
                                  heartbeat_stale_trial_callback=RetryAndClear(
                                      RetryHeartbeatStaleTrialCallback(max_retry=1)))
        except ImportError as exc:
            raise UsageError(f"--storage {shown}: the database driver is not installed ({exc}); "
                             "for postgresql:// install psycopg: pip install 'psycopg[binary]'"
                             ) from None
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if not _retryable(exc):
                raise UsageError(f"--storage {shown}: the database refused the connection or "
                                 f"Optuna's tables ({' '.join(str(exc.orig).split())}); give a "
                                 "URL of a database this user may create tables in") from None
            if attempt == 2:
                raise
            time.sleep(1.0)


class RetryAndClear:
    """Optuna's callback for a dead worker's trial: retry its candidate once (the wrapped
    callback) and remove the run folder it was training into, which nothing will finish."""

    def __init__(self, retry):
        self.retry = retry

    def __call__(self, study, trial) -> None:
        self.retry(study, trial)
        run_dir = trial.user_attrs.get("run_dir")
        if not run_dir:
            return
        try:  # Optuna calls this unguarded: a failed tidy-up must not end a live worker
            if remove_trial_folder(Path(run_dir)):
                log.info("trial %d: its worker died; removed %s", trial.number, run_dir)
        except OSError as exc:
            log.warning("trial %d: its worker died; %s was left (%s)", trial.number, run_dir,
                        exc)


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
        if entry.name not in RUN_ENTRIES:
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


# PostgreSQL's codes for a table, type or row another worker made first, and for transient
# conflicts (serialization failure, deadlock)
_RACE_CODES = {"42P07", "42710", "23505", "40001", "40P01"}


def _sqlstate(exc) -> str | None:
    """The PostgreSQL error code under a SQLAlchemy error: psycopg (3) names it ``sqlstate``,
    psycopg2 ``pgcode``; None from other databases."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def _retryable(exc) -> bool:
    """A race with another worker or a transient conflict, not a wrong URL or a refusal."""
    from sqlalchemy.exc import IntegrityError
    code = _sqlstate(exc)
    if code is not None:
        return code in _RACE_CODES
    text = str(exc.orig).lower()  # SQLite and others: no codes, English messages
    return isinstance(exc, IntegrityError) or "already exists" in text or "locked" in text


# pg_advisory_lock's key for creating Optuna's schema: any constant shared by all workers
SCHEMA_LOCK = 0x636E6E6270  # "cnnbp"
SCHEMA_LOCK_TIMEOUT_S = 120.0  # how long a worker waits for the schema lock


@contextlib.contextmanager
def _schema_lock(url: str, shown: str):
    """Hold a PostgreSQL session-level advisory lock (released with the connection), waiting
    at most ``SCHEMA_LOCK_TIMEOUT_S`` for it: a worker stuck while holding it (creating
    Optuna's tables takes seconds) must not stall every other one for good."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy.exc import OperationalError
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT set_config('lock_timeout', :ms, false)"),
                         {"ms": f"{int(SCHEMA_LOCK_TIMEOUT_S * 1000)}ms"})
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                             {"key": SCHEMA_LOCK})
            except OperationalError as exc:
                if _sqlstate(exc) != "55P03":  # lock_not_available
                    raise
                raise UsageError(
                    f"--storage {shown}: another session has held cnnbp's schema lock "
                    f"(advisory lock {SCHEMA_LOCK}) for over {SCHEMA_LOCK_TIMEOUT_S:g} s; a "
                    "worker creating Optuna's tables needs seconds, so it may be stuck: find "
                    "it with SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    f"AND classid = {SCHEMA_LOCK >> 32} AND objid = {SCHEMA_LOCK & 0xFFFFFFFF} "
                    "AND objsubid = 1, end it (pg_terminate_backend), and start this worker "
                    "again") from None
            conn.commit()
            yield
    finally:
        engine.dispose()


def probe(space: SearchSpace, doc: dict, seed: int) -> Candidate:
    """The first feasible candidate among ``PROBE_CANDIDATES`` random ones, or a refusal that
    says which constraint excluded them and how."""
    import optuna
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    excluded: dict[str, list[Candidate]] = {}
    for _ in range(PROBE_CANDIDATES):
        trial = study.ask()
        cand = check(doc, space, suggest(trial, space, doc))
        study.tell(trial, 0.0)
        if cand.feasible:
            return cand
        excluded.setdefault(cand.excluded_by, []).append(cand)
    parts = []
    for name, cands in sorted(excluded.items(), key=lambda kv: -len(kv[1])):
        what = "an impossible shape" if name == "shape" else f"over {name}"
        parts.append(f"{len(cands)} by {what} (e.g. {cands[0].values}: {cands[0].reason})")
    raise RefusedError(f"the search space holds no feasible net: none of {PROBE_CANDIDATES} "
                       f"random candidates passed the static checks — excluded {'; '.join(parts)}. "
                       "Widen the ranges or the budgets; nothing was trained")


class Objective:
    """Optuna's objective: check statically, then train the candidate into a run directory."""

    def __init__(self, space: SearchSpace, doc: dict, settings: Settings):
        self.space, self.doc, self.settings = space, doc, settings
        self.latency = None
        if "max_latency_ms" in space.budgets or "latency" in space.objectives:
            from .latency import LatencyCache
            self.latency = LatencyCache(settings.out / "latency.json")

    def __call__(self, trial):
        cand = check(self.doc, self.space, suggest(trial, self.space, self.doc), self.latency)
        for name, value in zip(CONSTRAINTS, cand.constraints()):
            trial.set_constraint(name, value)  # > 0: infeasible; the samplers read these
        trial.set_user_attr("check_ms", round(cand.check_ms, 3))
        for k, v in cand.measures.items():
            trial.set_user_attr(k, v)
        if not cand.feasible:
            trial.set_user_attr(STATUS, "infeasible")
            trial.set_user_attr("reason", cand.reason)
            return self._values(cand, 0.0)
        trial.set_user_attr("blueprint", cand.compiled.resolved)
        accuracy, pruned = self._train(trial, cand)
        if pruned:
            import optuna
            trial.set_user_attr(STATUS, "pruned")
            trial.set_user_attr("reason", "stopped early by the median pruner")
            raise optuna.TrialPruned()
        trial.set_user_attr(STATUS, "trained")
        return self._values(cand, accuracy)

    def _values(self, cand: Candidate, accuracy: float):
        extra = {"macs": cand.measures.get("macs"), "latency": cand.measures.get("latency_ms")}
        values = [accuracy] + [float(extra[o]) if extra[o] is not None else math.inf
                               for o in self.space.objectives[1:]]
        return values[0] if len(values) == 1 else values

    def _train(self, trial, cand: Candidate) -> tuple[float, bool]:
        from cnnbp.contract.rundir import RunDir
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


def trained_count(study) -> int:
    """Trials that trained (or were stopped early by the pruner), not the excluded ones."""
    from optuna.trial import TrialState
    return sum(1 for t in study.get_trials(deepcopy=False,
                                           states=(TrialState.COMPLETE, TrialState.PRUNED))
               if t.user_attrs.get(STATUS) in ("trained", "pruned"))


def run(space: SearchSpace, doc: dict, settings: Settings,
        on_trial: Callable[[Any, Any], None] | None = None):
    """Run (or resume) the search until ``settings.trials`` trials have trained, the timeout
    passes, or the sampler proposes only impossible nets; return the study."""
    net = probe(space, doc, settings.seed).compiled.network  # refuse an empty space first
    from cnnbp.train.sources import preload
    # --data problems that need no TensorFlow, before the study or OUT is made
    preload(settings.data, net.input_shape, net.classes, net.class_names)
    study = open_study(space, doc, settings)
    streak = 0

    def after(study, frozen) -> None:
        nonlocal streak
        streak = streak + 1 if frozen.user_attrs.get(STATUS) == "infeasible" else 0
        if on_trial:
            on_trial(study, frozen)
        # Counting reads every trial from storage: do it only when this one trained.
        if streak == 0 and trained_count(study) >= settings.trials:
            study.stop()
        elif streak >= MAX_INFEASIBLE_STREAK:
            log.warning("the sampler proposed %d infeasible candidates in a row; stopping",
                        streak)
            study.stop()

    if trained_count(study) < settings.trials:
        study.optimize(Objective(space, doc, settings), timeout=settings.timeout,
                       callbacks=[after])
    return study


def _stable(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, default=str)
