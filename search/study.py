"""A blueprint with a ``search:`` section + data → an Optuna study whose trials are run dirs.

Every candidate is checked statically first (``candidate.check``) in the proposer's sampling
step (``proposer``); one that cannot work is recorded as a FAIL trial with its reason (no
sampler or pruner counts it) and never reaches TensorFlow. A feasible one is claimed under a
lock shared by the workers, so ``--trials`` is the study's exact total, and trains through
``cnnbp.train.fit.train`` into ``OUT/trials/NNN/``, reporting validation accuracy each epoch
to Optuna's median pruner. A net already trained in the study is recorded as a repeat, not
trained again. The study lives in ``OUT/study.db`` (SQLite) unless ``storage`` names another
database or a journal file, so a killed search resumes and several workers can share one study.
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

from .candidate import Candidate, check
from .proposer import STATUS
from .sampling import suggest

log = logging.getLogger(__name__)

PROBE_CANDIDATES = 500     # random candidates tried before refusing a space as empty
MAX_INFEASIBLE_STREAK = 2000  # the sampler keeps proposing the impossible: give up
# A worker silent for 3 heartbeats has died: its trial is retried. CNNBP_SEARCH_HEARTBEAT_S
# shortens it (the kill test waits 3 heartbeats for a dead worker, not 90 s).
_HEARTBEAT = os.environ.get("CNNBP_SEARCH_HEARTBEAT_S", "")
HEARTBEAT_S = max(1, int(_HEARTBEAT)) if _HEARTBEAT.isdigit() else 30


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
    """Create the study, or load it to resume; refuse one made for another space. Returns
    the shared study and the sampler for the proposer's shadow study (``proposer``)."""
    import warnings

    import optuna

    if not settings.storage:  # a shared database is opened before OUT is made
        settings.out.mkdir(parents=True, exist_ok=True)
    url = storage_url(settings)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(url)
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
    # The shared study only stores: every candidate is chosen by `sampler` in the proposer's
    # shadow study and enqueued with its values fixed, so its own sampler never draws.
    study = optuna.create_study(storage=storage, pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=seed),
                                study_name=settings.study_name, directions=directions,
                                load_if_exists=True)
    fingerprint = {"space": space.to_json(), "blueprint": _stable(doc)}
    found = {k: study.user_attrs.get(k) for k in fingerprint}
    if study.user_attrs and found != fingerprint:
        raise RefusedError(f"{url}: the study {settings.study_name!r} was made for another "
                           "blueprint or search space; pick a new -o (or --study-name) rather "
                           "than mix their trials")
    for k, v in fingerprint.items():
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    from cnnbp.contract.atomic import write_json
    write_json(settings.out / SEARCH_FILE, {"storage": url, "study_name": settings.study_name,
                                            "objectives": list(space.objectives)})
    return study, sampler


SEARCH_FILE = "search.json"  # OUT/search.json: where the study is, for --refresh


def load_study(out: Path):
    """The study a search folder's ``search.json`` names, and its objectives (for
    ``--refresh``). Refuses a folder that is no search's."""
    import warnings

    import optuna
    meta = out / SEARCH_FILE
    try:
        found = json.loads(meta.read_text())
        url, name, objectives = found["storage"], found["study_name"], found["objectives"]
    except FileNotFoundError:
        raise UsageError(f"--refresh {out}: {meta} does not exist; give the -o folder of a "
                         "`cnnbp search` (it writes search.json when it starts)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--refresh {out}: {meta} is not what cnnbp search writes ({exc}); "
                         "rerun the search to rewrite it") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UsageError(f"--refresh {out}: the storage {meta} names holds no study {name!r}"
                         ) from None
    return study, tuple(objectives)


def storage_url(settings: Settings) -> str:
    """The storage as given (an RDB URL or journal:PATH), default OUT/study.db."""
    return settings.storage or f"sqlite:///{(settings.out / 'study.db').resolve()}"


def open_storage(url: str):
    """``journal:PATH`` (a file, no server) or an RDB URL, both with heartbeats."""
    if not url.startswith("journal:"):
        return _storage(url)
    from .journal import HeartbeatJournalStorage
    path = Path(url.removeprefix("journal:")).expanduser()
    if not path.name or not path.parent.is_dir():
        raise UsageError(f"--storage {url}: journal:PATH needs a file in an existing folder "
                         f"({path.parent} is not one), e.g. journal:/shared/search.log")
    return HeartbeatJournalStorage(path.resolve(), HEARTBEAT_S, 3 * HEARTBEAT_S,
                                   retry_callback())


def retry_callback():
    """What a stale trial gets: failed, its candidate queued once more, its folder removed."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryAndClear(RetryHeartbeatStaleTrialCallback(max_retry=1))


def _storage(url: str):
    """Optuna's RDB storage with heartbeats, so a dead worker's trial is retried.

    Workers started together race to create Optuna's tables and types, and the loser's DDL
    fails (optuna/optuna#1092: no fix upstream; it advises creating the study first). On
    PostgreSQL the workers take turns under an advisory lock; elsewhere the loser retries
    and finds the tables made.
    """
    from optuna.storages import RDBStorage
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
                                  heartbeat_stale_trial_callback=retry_callback())
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
    callback) and remove the run folder it was training into, which nothing will finish —
    unless the run had finished (the worker died before telling Optuna): then its result is
    recovered as a new trial and nothing is trained again."""

    def __init__(self, retry):
        self.retry = retry

    def __call__(self, study, trial) -> None:
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir and (Path(run_dir) / "metrics.json").is_file():
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


def recover_finished(study, trial, run: Path) -> None:
    """A dead worker's trial whose run finished: add its result to the study as a COMPLETE
    trial (``failed_trial`` names the dead one, as Optuna's retries do)."""
    import optuna

    from cnnbp.contract.rundir import RunDir
    metrics = json.loads((run / "metrics.json").read_text())
    accuracy = float(RunDir(run).read_state().history[-1]["val_accuracy"])
    attrs = {**trial.user_attrs, STATUS: "trained", "val_accuracy": accuracy,
             "test_accuracy": metrics["test_accuracy"], "epochs": metrics["epochs"],
             "reason": f"recovered from trial {trial.number}, whose worker died after "
                       "training it"}
    costs = [float(attrs.get(k, math.inf)) for k in attrs.get(COST_KEYS, [])]
    values = [accuracy] + costs
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, values=values, params=trial.params,
        distributions=trial.distributions, user_attrs=attrs,
        intermediate_values=trial.intermediate_values,
        system_attrs={"failed_trial": trial.number}))
    log.info("trial %d: its worker died after training it; result recovered", trial.number)


COST_KEYS = "cost_keys"  # user attribute: the measures after accuracy in the trial's values


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


class Trainer:
    """Trains a claimed trial of the shared study into its run directory and tells Optuna."""

    def __init__(self, space: SearchSpace, doc: dict, settings: Settings, latency=None):
        self.space, self.doc, self.settings, self.latency = space, doc, settings, latency

    def __call__(self, study, trial):
        """Train ``trial`` (its values fixed when it was enqueued); return it frozen."""
        import optuna
        cand = check(self.doc, self.space, suggest(trial, self.space, self.doc), self.latency)
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


NET_KEY = "net_key"


def trained_count(study) -> int:
    """Trials that trained (or were stopped early by the pruner), not the records."""
    from optuna.trial import TrialState
    return sum(1 for t in study.get_trials(deepcopy=False,
                                           states=(TrialState.COMPLETE, TrialState.PRUNED))
               if t.user_attrs.get(STATUS) in ("trained", "pruned"))


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
    study, sampler = open_study(space, doc, settings)
    latency = None
    if "max_latency_ms" in space.budgets or "latency" in space.objectives:
        from .latency import LatencyCache
        latency = LatencyCache(settings.out / "latency.json")
    from .proposer import Proposer, record
    proposer = Proposer(space, doc, sampler, latency)
    trainer = Trainer(space, doc, settings, latency)
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    streak, pending = 0, None
    with claim_lock(storage_url(settings)) as lock:
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
                        frozen = _repeat(study, pending, same, record)
                        streak += 1
                        if on_trial:
                            on_trial(study, frozen)
                    pending = None
                if trial is not None:
                    study._storage.record_heartbeat(trial._trial_id)
            if trial is not None:
                streak = 0
                with _heartbeat(study, trial):
                    frozen = trainer(study, trial)
                if on_trial:
                    on_trial(study, frozen)
            elif state.claimed >= settings.trials:
                if not state.running and not state.waiting:
                    break  # the study is complete
                time.sleep(WAIT_POLL_S)  # others' trials still train: their results or death
    return study


def _repeat(study, pending, same: int, record):
    """Record a candidate whose net trial ``same`` trains or trained: reuse its result."""
    from optuna.trial import TrialState
    earlier = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
        study._study_id, same))
    reuse = {k: earlier.user_attrs[k] for k in ("val_accuracy", "test_accuracy")
             if k in earlier.user_attrs and earlier.state != TrialState.RUNNING}
    return record(study, dict(pending.params), dict(pending.distributions), pending.candidate,
                  "repeat", f"the same net as trial {same}; not trained again", reuse)


def _ask(study):
    """``study.ask()`` without its warning that heartbeats are meant for ``optimize``: this
    loop records them itself (``_heartbeat``)."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        return study.ask()


def fail_stale(study) -> None:
    """Fail the trials of workers that stopped sending heartbeats; the callback retries them."""
    import warnings

    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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


class _FileLock:
    """An exclusive ``flock`` on a file: one worker at a time claims trials."""

    def __init__(self, path: Path):
        self.file = open(path, "a")  # noqa: SIM115 - held for the whole search

    def __enter__(self):
        import fcntl
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.file, fcntl.LOCK_UN)

    def close(self):
        self.file.close()


class _AdvisoryLock:
    """A PostgreSQL advisory lock on a connection kept for the whole search."""

    def __init__(self, url: str):
        import sqlalchemy
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.conn = self.engine.connect()
        self.text = sqlalchemy.text

    def __enter__(self):
        self.conn.execute(self.text("SELECT pg_advisory_lock(:key)"), {"key": CLAIM_LOCK})
        self.conn.commit()

    def __exit__(self, *exc):
        self.conn.execute(self.text("SELECT pg_advisory_unlock(:key)"), {"key": CLAIM_LOCK})
        self.conn.commit()

    def close(self):
        self.conn.close()
        self.engine.dispose()


CLAIM_LOCK = SCHEMA_LOCK + 1  # pg_advisory_lock's key for claiming a trial


@contextlib.contextmanager
def claim_lock(url: str):
    """The lock the workers of one study claim trials under: a PostgreSQL advisory lock, or
    an ``flock`` on a file beside a SQLite database or journal (a shared filesystem must
    support flock, as NFS v4 does). Other databases: none, and the total may overshoot."""
    if url.startswith("postgresql"):
        lock = _AdvisoryLock(url)
    elif url.startswith(("sqlite:///", "journal:")):
        path = url.removeprefix("sqlite:///").removeprefix("journal:")
        lock = _FileLock(Path(path + ".claim.lock"))
    else:
        lock = None
    try:
        yield lock if lock is not None else contextlib.nullcontext()
    finally:
        if lock is not None:
            lock.close()


def _stable(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, default=str)
