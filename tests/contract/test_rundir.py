"""The run folder's typed state and its creation: damaged state is named, never followed."""
import json
import signal
import subprocess
import sys
import textwrap

import pytest

from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.rundir import RunDir, RunState, creating, resumable
from tests.conftest import ROOT

GOOD = {"data": "digits", "data_source": "d", "epoch": 1,
        "history": [{"epoch": 1, "loss": 0.5}], "best": 0.5, "wait": 0,
        "checkpoint": "state/epoch-1.npz", "train_seconds": 1.0, "samples_seen": 10}


def state_file(tmp_path, content):
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "state" / "state.json").write_text(content if isinstance(content, str)
                                              else json.dumps(content))
    return RunDir(run)


def test_a_state_from_before_format_versions_still_loads(tmp_path):
    state = state_file(tmp_path, GOOD).read_state()
    assert state.epoch == 1 and state.format_version == 1 and state.history[0]["epoch"] == 1
    assert isinstance(state.history[0]["epoch"], int)  # not turned into 1.0 in history.csv


@pytest.mark.parametrize("content, says", [
    ("", "is empty"),
    ("{\"data\": \"digits\", \"epo", "not valid JSON"),
    ("\x00garbage", "not valid JSON"),
    ([1, 2], "valid dictionary"),
    (GOOD | {"epoch": "1"}, "epoch: Input should be a valid integer, found '1'"),
    (GOOD | {"epoch": True}, "epoch: Input should be a valid integer"),
    (GOOD | {"epoch": -1, "history": []}, "epoch: must be 0 or more"),
    (GOOD | {"checkpoint": "../../../etc/passwd"}, "must be state/epoch-N.npz inside the run"),
    (GOOD | {"checkpoint": "/etc/passwd"}, "must be state/epoch-N.npz inside the run"),
    (GOOD | {"checkpoint": "state/epoch-7.npz"}, "is not the one of epoch 1"),
    (GOOD | {"epoch": 2}, "epoch is 2 but history has 1 rows"),
    (GOOD | {"format_version": 9}, "format_version 9 is not one this cnnbp reads"),
    (GOOD | {"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ({"epoch": 0}, "data: Field required"),
])
def test_damaged_state_is_named_with_its_field(tmp_path, content, says):
    run = state_file(tmp_path, content)
    with pytest.raises(ArtifactError) as err:
        run.read_state()
    assert str(run.state_file) in str(err.value) and says in str(err.value)


# Makes a run folder through ``creating`` and SIGKILLs itself after writing the files that
# come before state.json: where a kill used to leave a folder that was neither new nor a run.
CREATOR = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from cnnbp.contract.rundir import creating
    with creating(sys.argv[1]) as fresh:
        (fresh / "blueprint.yaml").write_text("name: x")
        (fresh / "labels.txt").write_text("a")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_kill_before_the_first_state_leaves_no_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CREATOR.format(root=str(ROOT)), str(out)],
                          capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    with creating(out) as fresh:  # a fresh `train -o` goes ahead and tidies the leftover
        RunState(data="digits").write(fresh.state_file)
    assert RunDir(out).status() == "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_half_made_folder_from_older_versions_is_recognised(tmp_path):
    out = tmp_path / "run"
    (out / "state").mkdir(parents=True)
    for name in ("blueprint.yaml", "labels.txt", "preprocess.json"):
        (out / name).write_text("x")
    assert RunDir(out).status() == "unstarted"
    with pytest.raises(ArtifactError, match="interrupted before its first epoch"):
        resumable(out)
    with creating(out) as fresh:  # and `train -o` may reuse it: no epoch was ever recorded
        RunState(data="digits").write(fresh.state_file)
    assert RunDir(out).read_state().epoch == 0 and not (out / "labels.txt").exists()


def test_a_folder_with_other_files_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not a cnnbp run"):
        with creating(out):
            pass
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ArtifactError, match="not a run directory"):
        resumable(out)
