"""Atomic writes under real SIGKILLs: nothing half-written is seen, and the next write tidies
or finishes what the killed one left."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cnnbp.contract.atomic import atomic_path, leftovers, recover
from tests.conftest import ROOT

# A writer that replaces the folder ``target`` atomically and SIGKILLs itself at the n-th
# os.replace call: 1 = before the old copy moves aside, 2 = between the swap's two renames.
WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from cnnbp.contract import atomic
    target, kill_at = sys.argv[1], int(sys.argv[2])
    real, calls = os.replace, []
    def replace(a, b):
        calls.append(a)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(a, b)
    atomic.os.replace = replace
    with atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "model.onnx").write_text("new")
""")


def killed_writer(target, kill_at):
    proc = subprocess.run([sys.executable, "-c", WRITER.format(root=str(ROOT)), str(target),
                           str(kill_at)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.fixture
def old_bundle(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "model.onnx").write_text("old")
    return target


def test_kill_before_the_swap_keeps_the_old_copy_and_the_next_write_tidies(old_bundle):
    killed_writer(old_bundle, 1)
    assert (old_bundle / "model.onnx").read_text() == "old"
    assert len(leftovers(old_bundle)["tmp"]) == 1  # the dead writer's complete new copy
    with atomic_path(old_bundle) as tmp:
        tmp.mkdir()
        (tmp / "model.onnx").write_text("newer")
    assert (old_bundle / "model.onnx").read_text() == "newer"
    assert sorted(p.name for p in old_bundle.parent.iterdir()) == ["bundle"]


def test_kill_between_the_two_renames_is_finished_by_recover(old_bundle):
    killed_writer(old_bundle, 2)
    assert not old_bundle.exists(), "the kill did not fall between the renames"
    found = leftovers(old_bundle)
    assert len(found["old"]) == 1 and len(found["tmp"]) == 1
    done = recover(old_bundle)
    assert (old_bundle / "model.onnx").read_text() == "new"  # the swap the writer began
    assert any("finished" in line for line in done)
    assert sorted(p.name for p in old_bundle.parent.iterdir()) == ["bundle"]


def test_an_old_copy_without_its_new_one_is_put_back(old_bundle):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    os.replace(old_bundle, old_bundle.with_name(f".bundle.{dead.stdout.strip()}.old"))
    recover(old_bundle)
    assert (old_bundle / "model.onnx").read_text() == "old"


def test_a_running_writers_files_are_left_alone(old_bundle):
    live = old_bundle.with_name(f".bundle.{os.getppid()}.tmp")  # pytest's parent: alive
    live.mkdir()
    assert recover(old_bundle) == [] and live.is_dir()


def test_files_of_similar_names_are_never_touched(old_bundle):
    for name in (".bundle.notes", ".bundle2.1.tmp", "bundle.1.tmp"):
        (old_bundle.parent / name).write_text("user's")
    recover(old_bundle)
    assert (old_bundle.parent / ".bundle.notes").is_file()
    assert (old_bundle.parent / ".bundle2.1.tmp").is_file()
    assert (old_bundle.parent / "bundle.1.tmp").is_file()
