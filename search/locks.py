"""The locks the workers of one study share: PostgreSQL advisory locks (one while Optuna's
tables are created, one while a trial is claimed) and an ``flock`` beside a file storage."""
from __future__ import annotations

import contextlib
from pathlib import Path

from cnnbp.contract.errors import UsageError


def sqlstate(exc) -> str | None:
    """The PostgreSQL error code under a SQLAlchemy error: psycopg (3) names it ``sqlstate``,
    psycopg2 ``pgcode``; None from other databases."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


# pg_advisory_lock's key for creating Optuna's schema: any constant shared by all workers
SCHEMA_LOCK = 0x636E6E6270  # "cnnbp"
SCHEMA_LOCK_TIMEOUT_S = 120.0  # how long a worker waits for the schema lock
CLAIM_LOCK = SCHEMA_LOCK + 1  # pg_advisory_lock's key for claiming a trial


@contextlib.contextmanager
def schema_lock(url: str, shown: str):
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
                if sqlstate(exc) != "55P03":  # lock_not_available
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
