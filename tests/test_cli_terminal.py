"""What a person sees on the terminal: progress on a tty and in a pipe, TensorFlow's start-up
kept off stderr, a closed pipe, did-you-mean, predict's bad files, skipped images, notes."""
import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from cnnbp import cli

CNNBP = str(Path(sys.executable).with_name("cnnbp"))
TF_NOISE = ("cuInit", "absl::InitializeLog", "I0000", "E0000", "cudart_stub")


def on_a_terminal(args: list[str], cwd, columns: int = 120) -> str:
    """Run ``cnnbp ARGS`` with stdout and stderr on a pseudo-terminal ``columns`` wide (0: one
    made without a size, as ``script`` and some CI runners make); return all it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40 if columns else 0, columns,
                                                       0, 0))
    proc = subprocess.Popen([CNNBP, *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:  # a minute's training has taken five: fail rather than hang
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_train_draws_a_bar_within_epochs_on_a_terminal_and_lines_in_a_pipe(tmp_path):
    args = ["train", "digits", "--data", "digits", "--epochs", "3"]
    shown = on_a_terminal(args + ["-o", str(tmp_path / "tty")], tmp_path)
    assert "epoch 1/3 " in shown and "/41 steps [" in shown and "images/s" in shown  # the bar
    assert "run about " in shown  # from the second epoch: the time the run has left
    assert "epoch 1/3: accuracy" in shown and "epoch 3/3: accuracy" in shown
    assert "evaluating on 360 test samples, then writing the report" in shown
    piped = subprocess.run([CNNBP, *args, "-o", str(tmp_path / "pipe")], capture_output=True,
                           text=True, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "epoch 1/3: accuracy" in piped.stdout and "epoch 3/3: accuracy" in piped.stdout
    assert "evaluating on 360 test samples" in piped.stdout
    for stream in (piped.stdout, piped.stderr):  # no bar, no carriage returns in a log
        assert "steps [" not in stream and "\r" not in stream
    assert not any(noise in shown + piped.stderr for noise in TF_NOISE)


def test_a_terminal_of_no_size_still_gets_a_bar(tmp_path):
    shown = on_a_terminal(["train", "digits", "--data", "digits", "--epochs", "1", "-o",
                           str(tmp_path / "run")], tmp_path, columns=0)
    assert "epoch 1/1 " in shown and "/41 steps [" in shown  # tqdm drew nothing at width 0


def test_quiet_train_prints_the_result_alone(made, tmp_path, capsys):
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "1", "--quiet",
                     "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and out.startswith("digits: test accuracy")


def test_search_shows_a_line_per_trial_in_a_pipe_and_no_tensorflow_log(tmp_path):
    from tests.search.conftest import DIGITS_SPACE
    (tmp_path / "space.yaml").write_text(DIGITS_SPACE)
    proc = subprocess.run([CNNBP, "search", "space.yaml", "--data", "digits", "--trials", "1",
                           "-o", "out"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not any(noise in proc.stderr for noise in TF_NOISE), proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 1 and ": 1/1 trained, 00:" in lines[0]
    assert "elapsed, about 00:00 left, best val acc 0." in lines[0] and "\r" not in proc.stderr


def test_search_draws_one_bar_on_a_terminal(tmp_path):
    from tests.search.conftest import DIGITS_SPACE
    (tmp_path / "space.yaml").write_text(DIGITS_SPACE)
    shown = on_a_terminal(["search", "space.yaml", "--data", "digits", "--trials", "1", "-o",
                           "out"], tmp_path)
    assert "search " in shown and " 1/1 trained, 00:" in shown and "best val acc 0." in shown
    assert "\rsearch " in shown and " trained (val acc" not in shown  # no line per trial
    assert not any(noise in shown for noise in TF_NOISE)


def test_search_bar_clock_moves_during_a_trial(tmp_path):
    import re

    from tests.search.conftest import DIGITS_SPACE
    (tmp_path / "space.yaml").write_text(DIGITS_SPACE)
    shown = on_a_terminal(["search", "space.yaml", "--data", "digits", "--trials", "1",
                           "--epochs", "25", "-o", "out"], tmp_path)
    during = set(re.findall(r"0/1 trained, (\d\d:\d\d) elapsed", shown))
    assert len(during) >= 2, shown[-600:]  # redrawn while the only trial trained


def test_search_time_left_is_the_pace_capped_by_the_timeout():
    from cnnbp.search.progress import Progress
    progress = Progress(10, timeout=100.0, quiet=True)
    assert progress.left(30.0) == 70.0  # nothing trained yet: only the timeout is known
    progress.trained = 2
    assert progress.left(30.0) == 70.0  # pace: 8 more at 15 s = 120 s, but 70 s to timeout
    progress.timeout = None
    assert progress.left(30.0) == 120.0
    assert Progress(10, timeout=None, quiet=True).left(5.0) is None


def test_export_names_its_phases_on_stderr(made, tmp_path, capsys):
    assert cli.main(["export", str(made / "run"), "-o", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    phases = ["loading", "converting to ONNX (opset 17)", "checking ONNX Runtime against Keras",
              "making and measuring the variants", "writing the bundle"]
    assert [p for p in phases if p in err] == phases
    assert [err.index(p) for p in phases] == sorted(err.index(p) for p in phases)
    assert cli.main(["export", str(made / "run"), "-o", str(tmp_path / "q"), "--no-variants",
                     "--quiet"]) == 0
    assert "converting" not in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly_with_sigpipes_status():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before a byte is written
    proc = subprocess.run([CNNBP, "show", "vgg16"], stdout=write, stderr=subprocess.PIPE,
                          text=True)
    os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")


@pytest.mark.parametrize("command, first", [("show vgg16", "vgg16: 224x224x3 input, 1000 "
                                                           "classes"),
                                            ("check --json vgg16", "{")])
def test_piped_into_head(command, first):
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{CNNBP} {command} | head -1"],
                          capture_output=True, text=True)
    assert proc.stdout == first + "\n" and proc.stderr == ""
    assert proc.returncode in (0, 141)  # 0 when every byte fit in the pipe before head left


def test_a_mistyped_command_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["tarin", "digits"])
    assert exit_.value.code == 2
    assert "unknown command 'tarin' (did you mean train?); the commands: check, show" in \
        capsys.readouterr().err


def test_suggestions_count_a_transposition_as_one_edit(capsys):
    from cnnbp.builder.tokens import edit_distance
    assert (edit_distance("vgg61", "vgg16"), edit_distance("vgg61", "vgg19")) == (1, 2)
    assert edit_distance("tarin", "train") == 1 and edit_distance("", "ab") == 2
    assert cli.main(["check", "vgg61"]) == 2
    assert "'vgg61' (did you mean vgg16?)" in capsys.readouterr().err


def test_predict_answers_the_good_files_and_names_each_bad_one(made, tmp_path, capsys):
    from PIL import Image
    for name in ("good.png", "good2.png"):
        Image.new("L", (8, 8), 128).save(tmp_path / name)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    files = [str(tmp_path / n) for n in ("good.png", "corrupt.jpg", "good2.png", "missing.png")]
    assert cli.main(["predict", str(made / "bundle"), *files, "--top-k", "1"]) == 2
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == [files[0], files[2]]
    errors = err.splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"error: {files[1]}: ")
    assert errors[1] == f"error: {files[3]}: No such file or directory"
    assert cli.main(["predict", str(made / "bundle"), files[3]]) == 2  # bad input: 2, not 1


def test_skipped_images_are_counted_on_the_console(made, tmp_path, capsys):
    from tests.train.test_stream import bad_file, folder
    root = bad_file(folder(tmp_path / "d"))
    assert cli.main(["train", "digits", "--data", str(root), "--set", "input=[12, 12, 3]",
                     "--set", "classes=3", "--set", "class_names=[a, b, c]", "--epochs", "1",
                     "--batch-size", "8", "--skip-bad-images", "--quiet",
                     "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"skipped 2 images that could not be decoded (--skip-bad-images); their names: " \
           f"skipped_files in {tmp_path / 'run'}/metrics.json" in out


def test_a_blueprint_note_is_shown_for_the_users_file_not_a_runs_copy(made, tmp_path, capsys):
    from tests.builder.test_errors import GOOD
    text = GOOD.replace("kernel: 3", "kernel: [1, 5]")
    (tmp_path / "mine.yaml").write_text(text)
    run_dir = tmp_path / "run"
    shutil.copytree(made / "run", run_dir)
    (run_dir / "blueprint.yaml").write_text(text)  # as train resolves it: the list stays
    assert cli.main(["check", str(tmp_path / "mine.yaml")]) == 0
    assert "note: layers.CONV.kernel [1, 5] is read as one value per repetition" in \
        capsys.readouterr().err
    for args in (["show", str(run_dir)], ["check", str(run_dir / "blueprint.yaml")]):
        assert cli.main(args) == 0
        assert "note:" not in capsys.readouterr().err


def test_a_short_name_is_suggested_only_with_a_letter_in_common():
    from cnnbp.builder.tokens import closest
    assert closest("Z", ["K", "M", "N"]) is None  # one edit from each: no guess
    assert closest("m", ["K", "M", "N"]) == "M"
    assert closest("NN", ["K", "M", "N"]) == "N"  # a letter in common: a likely slip
    assert closest("QA", ["K", "M", "N"]) is None
