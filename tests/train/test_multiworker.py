"""Multi-host training: two real worker processes on 127.0.0.1 end with identical weights."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.contract.errors import UsageError
from cnnbp.train.multiworker import cluster
from tests.conftest import ROOT, free_port, keras_file_weights


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "train", "digits", "--data", "digits",
             "--epochs", "2", "--set", "training.augment.translate=0", "-o", str(out), "--quiet"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-2000:]
    chief = keras_file_weights(out / "model.keras")
    other = keras_file_weights(tmp_path / "run.worker1" / "model.keras")
    assert [n for n, _ in chief] == [n for n, _ in other] and len(chief) > 0
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(chief, other))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "2 workers x CPU" and metrics["epochs"] == 2
    assert metrics["test_accuracy"] > 0.8
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row an epoch, like the fit path


def test_cluster_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster() is None
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2", "c:3"]},
                                                "task": {"type": "worker", "index": 2}}))
    assert cluster() == (3, 2)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert cluster() is None  # one worker is a single host


def test_bad_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG: not a valid cluster spec"):
        cluster()
