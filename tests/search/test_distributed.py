"""Two workers on one study in a real PostgreSQL server started on loopback for the test:
every trial runs once, in one worker, and none is lost."""
from __future__ import annotations

import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres_url():
    initdb, postgres = _binary("initdb"), _binary("postgres")
    if not (initdb and postgres):
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    psycopg = pytest.importorskip("psycopg")  # SQLAlchemy 2.1's postgresql:// driver
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="cnnbp-pg-"))  # not under pytest's 0700 root folder
    try:
        if as_postgres:  # PostgreSQL refuses to run as root
            shutil.chown(data, "postgres")
        subprocess.run(as_postgres + [initdb, "-D", str(data / "db"), "-A", "trust", "-U",
                                      "cnnbp", "--no-sync"], check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(as_postgres + [postgres, "-D", str(data / "db"), "-p", str(port),
                                                 "-c", "listen_addresses=127.0.0.1", "-k",
                                                 str(data), "-c", "fsync=off"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    conn = psycopg.connect(host="127.0.0.1", port=port, user="cnnbp",
                                           dbname="postgres", autocommit=True)
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
            else:
                pytest.fail("PostgreSQL did not start")
            conn.execute("CREATE DATABASE search")
            conn.close()
            yield f"postgresql://cnnbp@127.0.0.1:{port}/search"
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_one_study(postgres_url, digits_space, tmp_path):
    bp = digits_space()
    cnnbp = str(Path(sys.executable).with_name("cnnbp"))
    workers = [subprocess.Popen([cnnbp, "search", bp, "--data", "digits", "--trials", "4",
                                 "--quiet", "--storage", postgres_url, "-o",
                                 str(tmp_path / f"worker{i}")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    for w in workers:
        output = w.communicate(timeout=600)[0]
        assert w.returncode == 0, output
    import optuna
    study = optuna.load_study(study_name="search", storage=postgres_url)
    states = [t.state.name for t in study.trials]
    assert "FAIL" not in states and "RUNNING" not in states
    trained = {t.number for t in study.trials if t.user_attrs.get("status") in ("trained", "pruned")}
    assert 4 <= len(trained) <= 5  # the other worker may finish one trial it had started
    dirs = [int(p.name) for i in range(2) for p in (tmp_path / f"worker{i}" / "trials").iterdir()]
    assert sorted(dirs) == sorted(trained)  # each trained trial ran in exactly one worker
    with open(tmp_path / "worker0" / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) >= len(study.trials) - 1
