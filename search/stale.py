"""When a RUNNING trial belongs to a dead worker, for both storages.

A worker claims a trial (``study.ask``) and records its first heartbeat just after, in a
second write. Optuna's storages ignore a RUNNING trial that has no heartbeat yet, so a worker
killed between the two writes left its trial RUNNING for good, and every other worker waited
for it at the study's end. Such a trial is stale once the grace period has passed since it
started: a live worker beats within milliseconds of claiming.
"""
from __future__ import annotations

from datetime import datetime, timedelta


def never_beat_and_stale(started: datetime | None, grace_s: float) -> bool:
    """A trial with no heartbeat at all: stale when it started over ``grace_s`` ago (Optuna
    stamps ``datetime_start`` with the worker's local clock, as compared here)."""
    return started is not None and datetime.now() - started > timedelta(seconds=grace_s)
