"""``--storage journal:PATH``: Optuna's JournalStorage on a file, with heartbeats.

No database server: workers on machines that share a filesystem append to one journal file.
Optuna's JournalStorage keeps no heartbeats, so a dead worker's trial would stay RUNNING for
good; here each running trial's worker touches ``PATH.heartbeats/<trial id>`` every heartbeat,
and a RUNNING trial whose file is older than the grace period is stale, as with RDBStorage
(``optuna.storages.fail_stale_trials`` then fails it and the callback retries it).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the interface fail_stale_trials reads
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from .stale import never_beat_and_stale


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A JournalStorage on ``path`` whose trials' heartbeats are file times beside it."""

    def __init__(self, path: Path, heartbeat_interval: int, grace_period: int,
                 stale_trial_callback: Callable | None = None):
        super().__init__(JournalFileBackend(str(path)))
        self.beats = path.with_name(path.name + ".heartbeats")
        self.beats.mkdir(exist_ok=True)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Mark the trial alive now (the file's modification time)."""
        (self.beats / str(trial_id)).touch()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose last heartbeat is older than the grace period, or that have
        none and started longer ago than that (``stale.py``)."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False,
                                         states=(TrialState.RUNNING,)):
            beat = self.beats / str(trial._trial_id)
            try:
                age = now - beat.stat().st_mtime
            except FileNotFoundError:
                if never_beat_and_stale(trial.datetime_start, self.grace_period):
                    stale.append(trial._trial_id)
                continue
            if age > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        """Seconds between heartbeats."""
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        """What ``fail_stale_trials`` calls for each trial it failed."""
        return self.stale_trial_callback
