"""Optuna's RDBStorage whose RUNNING trials without any heartbeat also go stale (``stale.py``)."""
from __future__ import annotations

from optuna.storages import RDBStorage
from optuna.storages._rdb import models  # the heartbeat table the stale check reads
from optuna.trial import TrialState

from .stale import never_beat_and_stale


class HeartbeatRDBStorage(RDBStorage):
    """RDBStorage; a trial whose worker died before its first heartbeat is stale too."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * self.heartbeat_interval
        session = self.scoped_session()
        try:
            never = (session.query(models.TrialModel)
                     .outerjoin(models.TrialHeartbeatModel)
                     .filter(models.TrialModel.study_id == study_id,
                             models.TrialModel.state == TrialState.RUNNING,
                             models.TrialHeartbeatModel.trial_heartbeat_id.is_(None))
                     .all())
            # datetime_start is local time, as Optuna's FrozenTrial gives it
            return stale + [t.trial_id for t in never
                            if never_beat_and_stale(t.datetime_start, grace)]
        finally:
            session.close()
