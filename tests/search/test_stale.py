"""A worker killed between claiming a trial and its first heartbeat: the trial has no
heartbeat at all, and still goes stale once the grace period has passed since it started (it
used to stay RUNNING for good, and the other workers waited for it at the study's end)."""
from __future__ import annotations

from datetime import datetime, timedelta

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from cnnbp.search.journal import HeartbeatJournalStorage
from cnnbp.search.rdb import HeartbeatRDBStorage
from cnnbp.search.recovery import fail_stale, retry_callback
from cnnbp.search.stale import never_beat_and_stale

GRACE_S = 60


def _journal(tmp_path):
    return HeartbeatJournalStorage(tmp_path / "search.log", 20, GRACE_S, retry_callback())


def _rdb(tmp_path):
    return HeartbeatRDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=20,
                               grace_period=GRACE_S,
                               heartbeat_stale_trial_callback=retry_callback())


def _running(storage, study, started: datetime, m: int) -> int:
    """A RUNNING trial claimed at ``started``, without a heartbeat; its id."""
    template = create_trial(state=TrialState.RUNNING, params={"M": m},
                            distributions={"M": optuna.distributions.IntDistribution(1, 4)})
    template.datetime_start = started
    return storage.create_new_trial(study._study_id, template_trial=template)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats
@pytest.mark.parametrize("make", [_journal, _rdb], ids=["journal", "rdb"])
def test_a_trial_that_never_beat_goes_stale_after_the_grace_period(make, tmp_path):
    storage = make(tmp_path)
    study = optuna.create_study(storage=storage, study_name="search")
    now = datetime.now()
    dead = _running(storage, study, now - timedelta(seconds=GRACE_S + 30), 2)
    claimed = _running(storage, study, now - timedelta(seconds=GRACE_S - 30), 3)
    beating = _running(storage, study, now - timedelta(seconds=GRACE_S + 30), 4)
    storage.record_heartbeat(beating)  # an old trial whose worker is alive
    assert storage._get_stale_trial_ids(study._study_id) == [dead]
    fail_stale(study)
    states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert states[dead] == TrialState.FAIL
    assert states[claimed] == states[beating] == TrialState.RUNNING
    retry, = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert retry.params == {"M": 2}


def test_the_rule_counts_from_the_claim_and_needs_a_start():
    now = datetime.now()
    assert never_beat_and_stale(now - timedelta(seconds=GRACE_S + 1), GRACE_S)
    assert not never_beat_and_stale(now - timedelta(seconds=GRACE_S - 5), GRACE_S)
    assert not never_beat_and_stale(None, GRACE_S)  # not started: nothing to count from
