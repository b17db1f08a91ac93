"""The trials' child process: it answers the parent's pruner each epoch, is replaced after its
quota of trials, and a child that dies is an error naming its exit code, after which the next
trial gets a new child. The search's own process never imports TensorFlow."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from cnnbp.search.trial_process import TrialError, TrialProcess
from cnnbp.search.trial_training import Task

NET = {
    "name": "tiny", "input": [8, 8, 1], "classes": 10, "pattern": "CONV-RELU-POOL-FC-SOFTMAX",
    "layers": {"CONV": {"filters": 4, "kernel": 3, "padding": "same"}},
    "training": {"epochs": 3, "batch_size": 128, "validation_split": 0.2},
}


def _task(tmp_path, name: str, prunes: bool = True) -> Task:
    from cnnbp.builder.blueprint import compile_data
    resolved = compile_data(NET).resolved
    return Task(resolved, str(tmp_path / "trials" / name), "digits", full=False, prunes=prunes)


def test_recycled_answering_and_a_death(tmp_path):
    trials = TrialProcess(recycle=2)
    asked: list = []
    try:
        # the pruner stops the first trial after its second epoch; it could not win
        pids = []

        def first_stop(step, value):
            pids.append(trials.process.pid)
            asked.append((step, value))
            return step == 2

        first = trials.run(_task(tmp_path, "000"), first_stop, lambda accuracy: False)
        assert [s for s, _ in asked] == [1, 2] and first.pruned and first.epochs == 2
        assert first.test_accuracy is None
        assert sorted(p.name for p in (tmp_path / "trials" / "000").iterdir()) == [
            "blueprint.yaml", "history.csv", "trial.json"]
        second = trials.run(_task(tmp_path, "001"),
                            lambda step, value: pids.append(trials.process.pid) or False,
                            lambda accuracy: True)
        assert len(set(pids)) == 1 and not second.pruned and second.epochs == 3
        child = pids[0]
        assert 0 <= second.test_accuracy <= 1
        assert (tmp_path / "trials" / "001" / "model.keras").is_file()
        saved = json.loads((tmp_path / "trials" / "001" / "trial.json").read_text())
        assert saved["val_accuracy"] == second.val_accuracy

        def kill(step, value):  # the third trial: a new child (two trials each), killed
            assert trials.process.pid != child
            os.kill(trials.process.pid, signal.SIGKILL)
            return False

        with pytest.raises(TrialError, match=r"died \(exit code -9\)"):
            trials.run(_task(tmp_path, "002"), kill, lambda accuracy: True)
        assert not (tmp_path / "trials" / "002").exists()  # nothing half-written
        fourth = trials.run(_task(tmp_path, "003", prunes=False), lambda s, v: True,
                            lambda accuracy: False)
        assert fourth.epochs == 3  # no pruning asked: every epoch trained
    finally:
        trials.close()
    assert trials.process is None


def test_an_error_in_training_is_raised_in_the_parent(tmp_path):
    trials = TrialProcess()
    task = _task(tmp_path, "000")
    bad = Task({**task.resolved, "input": [8, 8, 3]}, task.run, "digits", False, True)
    try:
        with pytest.raises(TrialError, match="8x8x3|8, 8, 3|channels|shape"):
            trials.run(bad, lambda s, v: False, lambda a: False)
        good = trials.run(task, lambda s, v: False, lambda a: False)  # the child lives on
        assert good.epochs == 3
    finally:
        trials.close()


def test_the_search_process_never_imports_tensorflow(digits_space, tmp_path):
    code = ("import sys; from pathlib import Path; from cnnbp.search.load import load; "
            "from cnnbp.search import study; from cnnbp.search.settings import Settings; "
            f"doc, space = load({digits_space()!r}, [], []); "
            f"study.run(space, doc, Settings('digits', Path({str(tmp_path / 'o')!r}), 2)); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_search_trains_on_jax(digits_space, tmp_path):
    """Trials train on the backend the search runs with: KERAS_BACKEND=jax reaches the
    trials' process, whose array batches are Keras's (train.arrays), not tf.data's."""
    pytest.importorskip("jax")
    out = tmp_path / "out"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([str(sys.executable), "-m", "cnnbp.cli", "search", digits_space(),
                           "--data", "digits", "--trials", "2", "--quiet", "-o", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    results = [json.loads(p.read_text()) for p in out.glob("trials/*/trial.json")]
    assert len(results) == 2 and all(0 <= r["val_accuracy"] <= 1 for r in results)
    assert {r["backend"] for r in results} == {"jax"}
    with open(out / "trials" / "000" / "history.csv") as f:
        assert f.readline().startswith("epoch,")
