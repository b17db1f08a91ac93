"""The sampling step: propose a feasible candidate, resampling past infeasible ones.

The study's sampler (TPE, or NSGA-II for two objectives) runs on a private in-memory *shadow*
study, so an infeasible candidate is an in-memory trial with a violated constraint there —
the sampler learns to avoid its like — while the shared study keeps it as a *record*: no
trial at all (no sampler or pruner can count it), but an entry, with its values and reason, in
a study user attribute ``cnnbp.records.<worker>.<n>`` that holds all the records met while
proposing one candidate (one storage write for them all: a trial costs about 100 ms on
SQLite). ``results.csv`` lists every record. The shadow copies in every trial the shared
study finished and every other worker's records, so the sampler sees the whole study.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from cnnbp.builder.search_space import SearchSpace

from .candidate import CONSTRAINTS, Candidate, judge
from .sampling import suggest

log = logging.getLogger(__name__)

STATUS = "status"    # user attribute: trained | pruned | infeasible | repeat
ORIGIN = "origin"    # user attribute of a record: the worker that wrote it
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Proposal:
    """A feasible candidate and the Optuna parameters that reproduce it."""
    candidate: Candidate
    params: dict[str, Any]   # Optuna's parameter name -> stored value (lists as JSON text)
    distributions: dict      # Optuna's parameter name -> its distribution


class Proposer:
    """Proposes candidates for the shared ``study`` through a shadow study's sampler."""

    def __init__(self, space: SearchSpace, doc: dict, sampler, latency=None,
                 warmup=None, startup: int = 0):
        import optuna
        self.space, self.doc, self.latency = space, doc, latency
        # the costs after accuracy, as the shared study's objective gives them
        self.costs = ["latency_ms" if o == "latency" else o for o in space.objectives[1:]]
        directions = ["maximize"] + ["minimize"] * len(self.costs)
        # ``warmup`` (a random sampler) draws until ``startup`` feasible nets have trained:
        # infeasible candidates, which the shadow holds too, must not end TPE's random start
        self.sampler, self.startup, self.feasible = sampler, startup, 0
        self.shadow = optuna.create_study(sampler=warmup if warmup and startup else sampler,
                                          directions=directions)
        self.seen: set[int] = set()   # shared-study trial numbers already in the shadow
        self.seen_records: set[str] = set()  # record keys already in the shadow
        self.written = 0  # record batches this proposer wrote

    def propose(self, study, limit: int, on_record=None) -> Proposal | None:
        """The next feasible candidate; every infeasible one met on the way is recorded in
        ``study``. None after ``limit`` infeasible candidates in a row."""
        self.sync(study)
        if self.feasible >= self.startup and self.shadow.sampler is not self.sampler:
            self.shadow.sampler = self.sampler  # enough feasible nets trained: TPE models them
        batch: list[dict] = []
        try:
            for _ in range(limit):
                trial = self.shadow.ask()
                cand = judge(self.doc, self.space, suggest(trial, self.space, self.doc),
                             self.latency)
                for name, value in zip(CONSTRAINTS, cand.constraints()):
                    trial.set_constraint(name, value)  # > 0: infeasible; the sampler reads it
                if cand.feasible:
                    # its result comes through the shared study (sync); until then, ignored
                    self.shadow.tell(trial, state=_state("FAIL"))
                    return Proposal(cand, dict(trial.params), dict(trial.distributions))
                self.shadow.tell(trial, self._worst())
                batch.append(entry(trial.params, trial.distributions, cand, "infeasible",
                                   cand.reason))
                if on_record:
                    on_record(study, Record(batch[-1]))
                if len(batch) >= BATCH:
                    self._write(study, batch)
                    batch = []
            return None
        finally:
            if batch:
                self._write(study, batch)

    def _write(self, study, batch: list[dict]) -> None:
        study.set_user_attr(f"{RECORDS}{WORKER}.{self.written}", batch)
        self.written += 1

    def sync(self, study) -> None:
        """Copy into the shadow the shared study's finished trials it has not seen (trained
        and pruned ones with their values, repeats with the result they reuse) and the
        other workers' records of infeasible candidates, with their constraints."""
        from optuna.distributions import json_to_distribution
        from optuna.trial import TrialState
        for key, batch in study.user_attrs.items():
            if not key.startswith(RECORDS) or key in self.seen_records:
                continue
            self.seen_records.add(key)
            if key.startswith(f"{RECORDS}{WORKER}."):
                continue  # written by this worker: the shadow has them
            for rec in batch:
                self._copy(rec["params"], {k: json_to_distribution(v)
                                           for k, v in rec["distributions"].items()},
                           rec["constraints"], None)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                          TrialState.PRUNED,
                                                          TrialState.FAIL)):
            if t.number in self.seen:
                continue
            status = t.user_attrs.get(STATUS)
            if t.state == TrialState.FAIL and status != "repeat":
                self.seen.add(t.number)  # a dead worker's trial: its retry will report
                continue
            if status == "repeat" and t.user_attrs.get("val_accuracy") is None:
                continue  # its original is still training: copy the repeat later
            self.seen.add(t.number)
            self._copy(t.params, t.distributions, [0.0] * len(CONSTRAINTS), t)
            self.feasible += 1

    def _copy(self, params: dict, distributions: dict, violations: list, t) -> None:
        """One trial into the shadow: ``t`` a shared trial, or None for a record."""
        from optuna.trial import TrialState
        self.shadow.enqueue_trial(dict(params), skip_if_exists=False)
        trial = self.shadow.ask(dict(distributions))
        for name, value in zip(CONSTRAINTS, violations):
            trial.set_constraint(name, value)
        if t is None:
            self.shadow.tell(trial, self._worst())
        elif t.state == TrialState.PRUNED:
            for step, value in t.intermediate_values.items():
                trial.report(value, step)
            self.shadow.tell(trial, state=TrialState.PRUNED)
        elif t.user_attrs.get(STATUS) == "repeat":
            self.shadow.tell(trial, self._values(t.user_attrs))
        else:
            self.shadow.tell(trial, t.values if len(t.values) > 1 else t.values[0])

    def _worst(self):
        return self._values({})

    def _values(self, attrs: dict):
        """Accuracy first (0 when absent: the constraints rank an infeasible one last anyway),
        then the costs, as the shared study's objective gives them."""
        acc = float(attrs.get("val_accuracy", 0.0))
        if not self.costs:
            return acc
        return [acc] + [float(attrs.get(k, 1e30)) for k in self.costs]


RECORDS = "cnnbp.records."  # study user attributes: lists of records, one per write
BATCH = 200  # records per write at most (a long run of infeasible candidates is flushed)


@dataclass(frozen=True)
class Record:
    """A candidate that was not trained, as the progress callback sees a trial."""
    user_attrs: dict
    number: int | None = None


def entry(params: dict, distributions: dict, cand: Candidate, status: str, reason: str,
          extra: dict | None = None) -> dict:
    """A candidate that will not train, as stored: its status, reason and static measures
    as a trial's user attributes would hold them, its parameters and their distributions."""
    from optuna.distributions import distribution_to_json
    return {STATUS: status, "reason": reason, "check_ms": round(cand.check_ms, 3),
            ORIGIN: WORKER, "constraints": cand.constraints(), **cand.measures,
            **(extra or {}), "params": dict(params),
            "distributions": {k: distribution_to_json(v) for k, v in distributions.items()}}


def records(study) -> list[dict]:
    """Every record of ``study`` (all workers'), in the order each worker wrote them."""
    def order(key: str):
        worker, _, n = key.removeprefix(RECORDS).rpartition(".")
        return worker, int(n)
    found = [k for k in study.user_attrs if k.startswith(RECORDS)]
    return [rec for k in sorted(found, key=order) for rec in study.user_attrs[k]]


def record(study, params: dict, distributions: dict, cand: Candidate, status: str,
           reason: str, extra: dict | None = None):
    """Add a candidate that will not train to the shared study as a FAIL trial (no sampler
    or pruner counts it) with its status and reason; for repeats, which are rare and name
    the trial they repeat. Returns it frozen."""
    import optuna
    attrs = {k: v for k, v in entry(params, distributions, cand, status, reason,
                                    extra).items() if k not in ("params", "distributions")}
    frozen = optuna.trial.create_trial(state=_state("FAIL"), params=params,
                                       distributions=distributions, user_attrs=attrs)
    study.add_trial(frozen)
    return frozen


def _state(name: str):
    from optuna.trial import TrialState
    return TrialState[name]
