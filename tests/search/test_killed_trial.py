"""A search worker SIGKILLed in the middle of a trial: the rerun retries that candidate and
removes the dead trial's folder, so nothing half-trained stays in ``trials/``."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbp import cli
from cnnbp.search import storage
from cnnbp.search.recovery import remove_trial_folder, retry_callback
from tests.search.conftest import wait_for

HEARTBEAT_S = 1  # the dead worker's trial is stale after 3 heartbeats


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _running(out: Path) -> list:
    """The study's trials in state RUNNING (read from its SQLite file)."""
    import sqlite3
    if not (out / "study.db").is_file():
        return []
    with sqlite3.connect(out / "study.db") as db:
        try:
            return db.execute("select number from trials where state = 'RUNNING'").fetchall()
        except sqlite3.OperationalError:  # the tables are not made yet
            return []


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats
@pytest.mark.parametrize("keep", [True, False], ids=["run_folder", "lean"])
def test_a_killed_trial_is_retried_and_its_folder_removed(digits_space, tmp_path, keras,
                                                          monkeypatch, keep):
    """With --keep the kill lands between the first epoch's state and the trial's end, and
    the half-trained run folder goes; a lean trial writes its folder whole at its end, so
    none is left."""
    from tests.search.conftest import DIGITS_SPACE
    # long enough that the kill lands before the trial's end
    bp = digits_space(text=DIGITS_SPACE.replace("epochs: 1,", "epochs: 40,"))
    out = tmp_path / "out"
    args = ["search", bp, "--data", "digits", "--trials", "1", "--quiet", "-o", str(out)]
    args += ["--keep"] if keep else ["--search-set", "pruner=none"]
    env = {**os.environ, "CNNBP_SEARCH_HEARTBEAT_S": str(HEARTBEAT_S)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("cnnbp")), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if keep:
            wait_for(lambda: list(out.glob("trials/*/state/state.json")),
                     "the trial's first epoch state", alive=(proc,))
        else:
            wait_for(lambda: _running(out), "the trial to start", alive=(proc,))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if keep:
        dead = [p.parent.parent for p in out.glob("trials/*/state/state.json")]
        assert len(dead) == 1 and not (dead[0] / "metrics.json").exists()
    else:
        (number,), = _running(out)
        dead = [out / "trials" / f"{number:03d}"]

    # The dead worker is known only by its silence: wait until the storage itself counts its
    # trial stale (3 heartbeats without one), as a live worker would find it.
    monkeypatch.setattr(storage, "HEARTBEAT_S", HEARTBEAT_S)
    rdb = storage._storage(f"sqlite:///{out / 'study.db'}")
    study_id = rdb.get_study_id_from_name("search")
    stale = wait_for(lambda: rdb._get_stale_trial_ids(study_id), "the killed trial to go "
                     f"stale ({3 * HEARTBEAT_S} s without a heartbeat)", timeout=60)
    assert len(stale) == 1 and rdb.get_trial(stale[0]).state.name == "RUNNING"
    rdb.remove_session()
    # the retry, in a fresh process as a user would run it: no warning from Optuna
    rerun = subprocess.run([str(Path(sys.executable).with_name("cnnbp")), *args], env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    noise = [line for line in rerun.stderr.splitlines()
             if "optuna" in line.lower() or "Warning:" in line]
    assert noise == [], "\n".join(noise)

    assert not dead[0].exists(), f"{dead[0]} was left behind"
    rows = {int(r["trial"]): r for r in _rows(out) if r["trial"]}
    retry = [n for n, r in rows.items() if n != int(dead[0].name) and r["status"] == "trained"]
    assert rows[int(dead[0].name)]["status"] == "failed"
    assert rows[int(dead[0].name)]["reason"] == ("its worker stopped sending heartbeats "
                                                 f"(killed or cut off); retried as trial "
                                                 f"{retry[0]}")
    trained = [r for r in rows.values() if r["status"] == "trained"]
    finished = "metrics.json" if keep else "trial.json"
    assert len(trained) == 1 and (Path(trained[0]["run_dir"]) / finished).is_file()
    assert {p.name for p in (out / "trials").iterdir()} == {Path(trained[0]["run_dir"]).name}


@pytest.mark.parametrize("case", ["user_file", "in_state", "dot_file", "in_explain",
                                  "in_tensorboard", "relative", "not_a_trial"])
def test_a_folder_with_anything_else_is_kept(tmp_path, case):
    trial = tmp_path / "trials" / "007"
    (trial / "state").mkdir(parents=True)
    (trial / "blueprint.yaml").write_text("name: x\n")
    (trial / "state" / "state.json").write_text("{}")
    (trial / "state" / "epoch-1.npz").write_bytes(b"")
    mine = {"user_file": "notes.txt", "in_state": "state/notes.txt", "dot_file": ".notes",
            "in_explain": "explain/figure.png", "in_tensorboard": "tensorboard/train/notes.txt"}
    if case in mine:
        (trial / mine[case]).parent.mkdir(parents=True, exist_ok=True)
        (trial / mine[case]).write_text("mine")
    elif case == "not_a_trial":
        trial = trial.rename(tmp_path / "trials" / "mine")
    path = Path(os.path.relpath(trial)) if case == "relative" else trial
    assert remove_trial_folder(path) is False
    assert trial.is_dir()


def test_an_unstarted_trial_folder_and_its_temporaries_go(tmp_path):
    trial = tmp_path / "trials" / "003"
    (trial / "state").mkdir(parents=True)
    (trial / "blueprint.yaml").write_text("name: x\n")
    (trial / "state" / f".epoch-1.npz.{2**22 + 1}.tmp").write_bytes(b"")
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    leftover = tmp_path / "trials" / f".003.{dead_pid}.tmp"
    leftover.mkdir()
    assert remove_trial_folder(trial) is True
    assert not trial.exists() and not leftover.exists()


def test_a_dead_workers_finished_run_is_recovered_not_trained_again(digits_space, tmp_path,
                                                                   keras):
    """The worker died between the run's last file and telling Optuna: the result is read
    back from the run as a new COMPLETE trial, and the folder stays."""
    import json

    import optuna

    from cnnbp.contract.rundir import RunDir
    run = tmp_path / "trials" / "000"
    assert cli.main(["train", digits_space(), "--data", "digits", "--quiet", "-o",
                     str(run)]) == 0
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    trial = study.ask()
    trial.suggest_categorical("FC.units", [8, 16, 32])
    trial.set_user_attr("run_dir", str(run))
    trial.set_user_attr("cost_keys", [])
    dead = study.tell(trial, state=optuna.trial.TrialState.FAIL)
    retry_callback()(study, dead)
    assert run.is_dir()
    recovered = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(recovered) == 1 and not [t for t in study.trials if t.state.name == "WAITING"]
    got = recovered[0]
    history = RunDir(run).read_state().history
    assert got.value == got.user_attrs["val_accuracy"] == history[-1]["val_accuracy"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert got.user_attrs["test_accuracy"] == metrics["test_accuracy"]
    assert got.params == dead.params and got.system_attrs["failed_trial"] == dead.number
    assert got.user_attrs["status"] == "trained"
