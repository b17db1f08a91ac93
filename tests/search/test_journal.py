"""``--storage journal:PATH``: a journal file with heartbeats, so a dead worker's trial goes
stale, is failed and queued again, as with a database."""
from __future__ import annotations

import os
import time

import optuna
import pytest

from cnnbp.contract.errors import UsageError
from cnnbp.search.journal import HeartbeatJournalStorage
from cnnbp.search.recovery import fail_stale, retry_callback
from cnnbp.search.storage import open_storage


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")  # a bare study.ask
def test_a_trial_without_heartbeats_for_the_grace_period_is_failed_and_retried(tmp_path):
    storage = HeartbeatJournalStorage(tmp_path / "search.log", 1, 3,
                                      retry_callback())
    study = optuna.create_study(storage=storage, study_name="search")
    alive, dead = study.ask(), study.ask()
    dead.suggest_int("M", 1, 4)
    for trial in (alive, dead):
        storage.record_heartbeat(trial._trial_id)
    never = study.ask()  # just claimed, no heartbeat yet: not stale within the grace period
    beat = tmp_path / "search.log.heartbeats" / str(dead._trial_id)
    old = time.time() - 10  # its worker last beat 10 s ago: over the 3 s grace period
    os.utime(beat, (old, old))
    assert storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]
    fail_stale(study)
    states = {t.number: t.state.name for t in study.trials}
    assert states[dead.number] == "FAIL"
    assert states[alive.number] == states[never.number] == "RUNNING"
    retry = [t for t in study.trials if t.state.name == "WAITING"]
    assert len(retry) == 1 and retry[0].system_attrs["failed_trial"] == dead.number
    assert retry[0].params == {"M": dead.params["M"]}


def test_a_second_process_reads_the_same_journal(tmp_path):
    path = tmp_path / "search.log"
    first = optuna.create_study(storage=HeartbeatJournalStorage(path, 1, 3), study_name="s")
    first.enqueue_trial({"M": 2})
    again = optuna.load_study(study_name="s", storage=HeartbeatJournalStorage(path, 1, 3))
    assert [t.state.name for t in again.trials] == ["WAITING"]


def test_a_journal_in_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match=r"--storage journal:.*/nowhere/search.log: "
                                         r"journal:PATH needs a file in an existing folder"):
        open_storage(f"journal:{tmp_path / 'nowhere' / 'search.log'}")
