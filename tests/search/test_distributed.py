"""Two workers on one study, in a real PostgreSQL server started on loopback for the test or
a journal file: every trial runs once, in one worker, none is lost, the total is exact."""
from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.search.conftest import wait_for

pytestmark = pytest.mark.slow


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    psycopg = pytest.importorskip("psycopg")  # SQLAlchemy 2.1's postgresql:// driver
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="cnnbp-pg-"))  # not under pytest's 0700 root folder
    db = str(data / "db")
    try:
        if as_postgres:  # PostgreSQL refuses to run as root
            shutil.chown(data, "postgres")
        subprocess.run(as_postgres + [initdb, "-D", db, "-A", "trust", "-U", "cnnbp",
                                      "--no-sync"], check=True, capture_output=True)
        port = free_port()
        # pg_ctl -w returns once the server accepts connections (or says why it did not)
        started = subprocess.run(
            as_postgres + [pg_ctl, "start", "-w", "-t", "120", "-D", db, "-l",
                           str(data / "server.log"), "-o", f"-p {port} -c "
                           f"listen_addresses=127.0.0.1 -k {data} -c fsync=off"],
            capture_output=True, text=True)
        log = data / "server.log"
        assert started.returncode == 0, started.stdout + started.stderr + \
            (log.read_text() if log.exists() else "")
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="cnnbp", dbname="postgres",
                                 autocommit=True) as conn:
                conn.execute("CREATE DATABASE search")
            yield f"postgresql://cnnbp@127.0.0.1:{port}/search"
        finally:
            subprocess.run(as_postgres + [pg_ctl, "stop", "-w", "-m", "fast", "-D", db],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["postgresql", "journal"])
def shared_storage(request, tmp_path):
    """A storage several workers share: a PostgreSQL database, or a journal file."""
    if request.param == "journal":
        return f"journal:{tmp_path / 'search.log'}"
    return request.getfixturevalue("postgres_url")


def _load(storage: str):
    import optuna
    if storage.startswith("journal:"):
        from cnnbp.search.journal import HeartbeatJournalStorage
        path = Path(storage.removeprefix("journal:"))
        return optuna.load_study(study_name="search",
                                 storage=HeartbeatJournalStorage(path, 30, 90))
    return optuna.load_study(study_name="search", storage=storage)


def test_two_workers_share_one_study(shared_storage, digits_space, tmp_path):
    """--trials is the study's total, exactly; each trained trial ran in one worker; when the
    workers end, each one's outputs describe the whole study, and --refresh rewrites them."""
    from cnnbp.search.proposer import records
    bp = digits_space()
    cnnbp = str(Path(sys.executable).with_name("cnnbp"))
    workers = [subprocess.Popen([cnnbp, "search", bp, "--data", "digits", "--trials", "4",
                                 "--quiet", "--storage", shared_storage, "-o",
                                 str(tmp_path / f"worker{i}")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    for w in workers:
        output = w.communicate(timeout=600)[0]
        assert w.returncode == 0, output
    study = _load(shared_storage)
    states = {t.state.name for t in study.trials}
    assert states <= {"COMPLETE", "PRUNED", "FAIL"}  # nothing left running or queued
    assert all(t.user_attrs["status"] == "repeat" for t in study.trials
               if t.state.name == "FAIL")
    trained = {t.number for t in study.trials
               if t.user_attrs.get("status") in ("trained", "pruned")}
    assert len(trained) == 4  # exactly --trials, across both workers
    dirs = [int(p.name) for i in range(2) if (tmp_path / f"worker{i}" / "trials").is_dir()
            for p in (tmp_path / f"worker{i}" / "trials").iterdir()]
    assert sorted(dirs) == sorted(trained)  # each trained trial ran in exactly one worker
    outputs = [{name: (tmp_path / f"worker{i}" / name).read_bytes()
                for name in ("results.csv", "best.yaml")} for i in range(2)]
    assert outputs[0] == outputs[1]  # both describe the whole study
    with open(tmp_path / "worker0" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(study.trials) + len(records(study))
    assert {r["status"] for r in rows} <= {"trained", "pruned", "infeasible", "repeat"}
    for name in ("results.csv", "best.yaml", "history.png", "pareto.png"):
        (tmp_path / "worker1" / name).unlink()
    refreshed = subprocess.run([cnnbp, "search", "--refresh", str(tmp_path / "worker1")],
                               capture_output=True, text=True, timeout=300)
    assert refreshed.returncode == 0, refreshed.stderr
    assert {name: (tmp_path / "worker1" / name).read_bytes()
            for name in ("results.csv", "best.yaml")} == outputs[0]
    assert (tmp_path / "worker1" / "history.png").is_file()
    assert (tmp_path / "worker1" / "pareto.png").is_file()
    counts = dict((status, int(n)) for n, status in
                  re.findall(r"(\d+) (trained|pruned)\b", refreshed.stdout.splitlines()[-2]))
    assert counts.get("trained", 0) + counts.get("pruned", 0) == 4, refreshed.stdout


RACE = """
import sys
import optuna.storages, sqlalchemy  # imported before the start, as _storage imports them late
from cnnbp.search.storage import _storage
print("ready", flush=True)
sys.stdin.readline()  # the test writes a line once every worker is ready: all start together
_storage(sys.argv[1])
"""


def test_workers_starting_together_on_a_new_database_take_turns(postgres_url):
    """Optuna creates its tables on first use, and workers doing that at once raced (one died
    of PostgreSQL's 'type studydirection already exists'). While another session holds the
    schema lock none of four workers creates anything; once it is released, all succeed."""
    import optuna
    import psycopg
    from sqlalchemy.engine import make_url

    from cnnbp.search.locks import SCHEMA_LOCK
    url = make_url(postgres_url)
    holder = psycopg.connect(host=url.host, port=url.port, user=url.username,
                             dbname=url.database, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    workers = [subprocess.Popen([sys.executable, "-c", RACE, postgres_url],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    try:
        for w in workers:  # a worker that died on import shows its traceback here
            assert w.stdout.readline() == "ready\n", w.stdout.read()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        # each worker queues for the lock before touching any table
        wait_for(lambda: holder.execute(waiting).fetchone()[0] >= 4,
                 "four workers waiting for the schema lock", timeout=120, alive=tuple(workers))
        assert holder.execute(waiting).fetchone()[0] == 4
        tables = holder.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone()[0] == 0
    finally:
        holder.close()  # releases the lock
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    assert optuna.get_all_study_names(postgres_url) == []  # opened, usable, still empty


def test_a_database_that_refuses_the_connection_is_a_clear_error(digits_space, tmp_path):
    pytest.importorskip("psycopg")  # else the error names the missing driver
    url = f"postgresql://cnnbp@127.0.0.1:{free_port()}/search"  # nothing listens there
    out = tmp_path / "out"
    r = subprocess.run([str(Path(sys.executable).with_name("cnnbp")), "search", digits_space(),
                        "--data", "digits", "--trials", "1", "--storage", url, "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert f"--storage {url}: the database refused the connection" in r.stderr
    assert "Connection refused" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()  # nothing made for a search that never started


def test_a_storage_that_is_no_url_is_a_clear_error(digits_space, tmp_path):
    r = subprocess.run([str(Path(sys.executable).with_name("cnnbp")), "search", digits_space(),
                        "--data", "digits", "--trials", "1", "--storage", "not-a-url", "-o",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--storage not-a-url: not a database URL" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_schema_lock_held_too_long_is_a_clear_error(postgres_url, monkeypatch):
    """A worker stuck while holding the schema lock stalls the others only for
    SCHEMA_LOCK_TIMEOUT_S; then each says what holds it and how to end it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from cnnbp.contract.errors import UsageError
    from cnnbp.search import locks, storage
    monkeypatch.setattr(locks, "SCHEMA_LOCK_TIMEOUT_S", 0.5)
    url = make_url(postgres_url)
    holder = psycopg.connect(host=url.host, port=url.port, user=url.username,
                             dbname=url.database, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (locks.SCHEMA_LOCK,))
        started = time.monotonic()
        with pytest.raises(UsageError, match=r"--storage postgresql://cnnbp@127\.0\.0\.1:\d+"
                                             r"/search: another session has held "
                                             r"cnnbp's schema lock .* "
                                             r"for over 0\.5 s.*classid = 99 AND objid = 1852727920"
                                             r".*pg_terminate_backend") as refused:
            storage._storage(postgres_url)
        assert time.monotonic() - started < 30
        # the query the message gives finds the session that holds the lock, and only it
        query = re.search(r"(SELECT pid FROM pg_locks .*? AND objsubid = 1)",
                          str(refused.value)).group(1)
        assert holder.execute(query).fetchall() == [(holder.info.backend_pid,)]
    finally:
        holder.close()
    monkeypatch.undo()
    storage._storage(postgres_url)  # released: the tables are made
    tables = psycopg.connect(host=url.host, port=url.port, user=url.username,
                             dbname=url.database, autocommit=True)
    assert tables.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                          ).fetchone()[0] > 0
    tables.close()
