"""Where the study lives: the storage URL (default ``OUT/study.db``), and opening an RDB
database or a journal file, both with heartbeats so a dead worker's trial is retried."""
from __future__ import annotations

import os
import time
from pathlib import Path

from cnnbp.contract.errors import UsageError

from .locks import schema_lock, sqlstate
from .recovery import retry_callback
from .settings import Settings

# A worker silent for 3 heartbeats has died: its trial is retried. CNNBP_SEARCH_HEARTBEAT_S
# shortens it (the kill test waits 3 heartbeats for a dead worker, not 90 s).
_HEARTBEAT = os.environ.get("CNNBP_SEARCH_HEARTBEAT_S", "")
HEARTBEAT_S = max(1, int(_HEARTBEAT)) if _HEARTBEAT.isdigit() else 30


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


def _storage(url: str):
    """Optuna's RDB storage with heartbeats, so a dead worker's trial is retried.

    A trial whose worker died before its first heartbeat goes stale too (``stale.py``).
    Workers started together race to create Optuna's tables and types, and the loser's DDL
    fails (optuna/optuna#1092: no fix upstream; it advises creating the study first). On
    PostgreSQL the workers take turns under an advisory lock; elsewhere the loser retries
    and finds the tables made.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    from .rdb import HeartbeatRDBStorage
    try:  # the URL as shown in errors: no password
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise UsageError(f"--storage {url}: not a database URL; give one SQLAlchemy "
                         "reads, e.g. postgresql://user@host/cnnbp or "
                         "sqlite:////path/to/study.db") from None
    for attempt in range(3):
        try:
            with schema_lock(url, shown):
                return HeartbeatRDBStorage(url, heartbeat_interval=HEARTBEAT_S,
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


# PostgreSQL's codes for a table, type or row another worker made first, and for transient
# conflicts (serialization failure, deadlock)
_RACE_CODES = {"42P07", "42710", "23505", "40001", "40P01"}


def _retryable(exc) -> bool:
    """A race with another worker or a transient conflict, not a wrong URL or a refusal."""
    from sqlalchemy.exc import IntegrityError
    code = sqlstate(exc)
    if code is not None:
        return code in _RACE_CODES
    text = str(exc.orig).lower()  # SQLite and others: no codes, English messages
    return isinstance(exc, IntegrityError) or "already exists" in text or "locked" in text
