"""Training end to end on the embedded digits: the run directory, determinism, faults."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnbp.builder import load
from tests.conftest import ROOT, keras_file_weights

QUICK = ["training.epochs=2", "training.augment.translate=0"]


def cnnbp(*args, **kw):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    proc = cnnbp("train", "digits", "--data", "digits", "--epochs", "3", "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_run_directory_is_complete(digits_run):
    out, proc = digits_run
    for name in ("model.keras", "best.keras", "blueprint.yaml", "preprocess.json", "labels.txt",
                 "history.csv", "metrics.json", "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.rglob(".*tmp*")], "temporary files left behind"
    assert "test accuracy" in proc.stdout and "Traceback" not in proc.stderr


def test_the_summary_line_names_a_16_bit_precision_only(digits_run):
    from cnnbp.commands.train import summary_line
    from cnnbp.contract import records
    from cnnbp.contract.metrics import TrainMetrics
    out, proc = digits_run
    metrics = records.read(TrainMetrics, out / "metrics.json", "metrics")
    assert metrics.precision == "float32"
    assert proc.stdout.splitlines()[-1] == summary_line(metrics)
    assert " in " not in summary_line(metrics).split(" on ")[1]
    bf16 = summary_line(metrics.model_copy(update={"precision": "mixed_bfloat16"}))
    assert f"on {metrics.device} in mixed_bfloat16 -> " in bf16


def test_metrics_and_history(digits_run):
    out, _ = digits_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 3 and m["device"] == "CPU" and m["images_per_second"] > 0
    assert m["compile_cache"] is None  # JAX's; TensorFlow keeps none
    assert 0.85 <= m["test_accuracy"] <= 1 and m["test_samples"] == 360
    assert np.array(m["confusion_matrix"]).sum() == 360
    assert set(m["per_class"]) == {str(i) for i in range(10)}
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    later = sorted(float(r["seconds"]) for r in rows[1:])  # epochs 2 and 3: mean = median
    assert m["steady_images_per_second"] == round(m["train_samples"] / (sum(later) / 2), 1)


def test_resolved_blueprint_and_preprocessing(digits_run):
    out, _ = digits_run
    again = load(str(out / "blueprint.yaml"))
    assert again.network.training.epochs == 3  # the --epochs override was recorded
    prep = json.loads((out / "preprocess.json").read_text())
    assert prep["scale"] == 16.0 and prep["input_shape"] == [8, 8, 1]
    assert (out / "labels.txt").read_text().split() == [str(i) for i in range(10)]


def test_plots_are_real_images(digits_run):
    out, _ = digits_run
    for name in ("curves.png", "confusion.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] >= 400


def test_the_runs_page_has_its_charts_and_the_explain_figures_drawn_beside_the_test(
        digits_run, tmp_path):
    """Training draws the explain figures on a thread during the test evaluation and the
    charts once for both the run directory and report.html: the page holds those very
    charts, and the same figures `cnnbp report` draws again from the run's files."""
    import base64
    import shutil

    from cnnbp.report import write_run_report
    out, _ = digits_run

    def images(page: Path) -> dict:
        found = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"[^>]*alt="([^"]*)"',
                           page.read_text(encoding="utf-8"))
        return {alt: base64.b64decode(data) for data, alt in found}

    trained = images(out / "report.html")
    for alt in ("first-layer filters", "Grad-CAM", "receptive fields",
                "inputs that most excite the last stage", "misclassified held-out rows"):
        assert alt in trained, sorted(trained)
    assert trained["training curves"] == (out / "curves.png").read_bytes()
    assert trained["confusion matrix"] == (out / "confusion.png").read_bytes()
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    write_run_report(copy)  # drawn again, in this thread, from the files alone
    assert images(copy / "report.html") == trained


def test_saved_model_reloads_and_scores_as_reported(digits_run, keras):
    out, _ = digits_run
    from cnnbp.contract.preprocessing import Preprocessing
    from cnnbp.train.sources import load_source
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    prep = Preprocessing.model_validate_json((out / "preprocess.json").read_text())
    data = load_source("digits")
    accuracy = (model.predict(prep.normalize(data.x_test), verbose=0).argmax(1)
                == data.y_test).mean()
    reported = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert accuracy == pytest.approx(reported)


def test_same_seed_same_weights(tmp_path):
    runs = []
    for name in ("a", "b"):
        proc = cnnbp("train", "digits", "--data", "digits", *sum((["--set", s] for s in QUICK), []),
                     "-o", str(tmp_path / name), "--quiet")
        assert proc.returncode == 0, proc.stderr
        runs.append(tmp_path / name / "model.keras")
    arrays = [[w for _, w in keras_file_weights(p)] for p in runs]
    assert len(arrays[0]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(*arrays))


def test_existing_run_is_not_overwritten(digits_run):
    out, _ = digits_run
    proc = cnnbp("train", "digits", "--data", "digits", "-o", str(out))
    assert proc.returncode == 2 and "already holds a finished run" in proc.stderr


def test_resume_reads_the_runs_own_blueprint_and_names_it_when_missing(digits_run, tmp_path):
    """A run is resumed from its resolved blueprint.yaml, never from a shipped blueprint of the
    same name (``digits`` is one)."""
    import shutil

    from cnnbp.contract.errors import ArtifactError
    from cnnbp.train.resume import resume
    out, _ = digits_run
    copy = tmp_path / "digits"
    shutil.copytree(out, copy)
    (copy / "blueprint.yaml").unlink()
    with pytest.raises(ArtifactError) as caught:
        resume(copy, quiet=True)
    assert str(copy / "blueprint.yaml") in str(caught.value)
    assert "the resolved blueprint is missing" in str(caught.value)


def test_data_that_does_not_fit_fails_before_training(tmp_path):
    proc = cnnbp("train", "cifar10_small", "--data", "digits", "-o", str(tmp_path / "r"))
    assert proc.returncode == 2 and "samples are 8x8x1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_early_stopping_restores_the_best(tmp_path):
    from cnnbp.train.fit import train
    m = train(load("digits", ["training.epochs=6", "training.early_stopping=1",
                              "training.learning_rate=1e-9", "training.schedule=constant"]),
              "digits", tmp_path / "r", quiet=True)
    assert m.stopped_early and m.epochs == 2


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path):
    out = tmp_path / "r"
    args = [sys.executable, str(ROOT / "cli.py"), "train", "digits", "--data", "digits",
            "--set", "training.epochs=6", "--set", "training.batch_size=8", "-o", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    state = out / "state" / "state.json"
    # An epoch's line is printed once its checkpoint and state are saved, by which time the
    # next epoch is training (the commit runs beside it): the kill lands in epoch 3.
    for line in proc.stdout:
        if line.startswith("epoch 2/6:"):
            break
    else:
        pytest.fail(f"the run ended (exit {proc.wait()}) without printing its second epoch")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < 6, "the run was not interrupted mid-way"
    assert not (out / "metrics.json").exists()
    # what a kill between a commit and the old checkpoint's removal leaves behind
    stale = out / "state" / f"epoch-{killed_at - 1}.npz"
    stale.write_bytes(b"stale")
    resumed = cnnbp("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 6
    assert [p.name for p in (out / "state").glob("epoch-*.npz")] == ["epoch-6.npz"]


def test_tensorboard_event_files_on_request(tmp_path):
    import tensorflow as tf

    from cnnbp import cli
    out = tmp_path / "r"
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "2", "--quiet",
                     "--tensorboard", "-o", str(out)]) == 0
    events = sorted((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent.name for e in events} == {"train", "validation"}
    tags = {v.tag for e in events for event in tf.compat.v1.train.summary_iterator(str(e))
            for v in event.summary.value}
    assert {"epoch_loss", "epoch_accuracy"} <= tags


def test_history_records_the_rate_each_epoch_started_with(tmp_path):
    """A cosine schedule from 0.01 over 2 epochs (no warm-up): epoch 1 starts at 0.01, epoch 2
    at half way, cos(pi/2) -> 0.005; read at the end, epoch 2 would show 0."""
    from cnnbp import cli
    out = tmp_path / "r"
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "2", "--quiet", "--set",
                     "training.schedule=cosine", "--set", "training.learning_rate=0.01",
                     "-o", str(out)]) == 0
    rates = [float(r["learning_rate"]) for r in csv.DictReader((out / "history.csv").open())]
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.005, rel=0.05)


def test_training_prints_what_data_it_reads_first(tmp_path, capsys):
    from cnnbp import cli
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "1",
                     "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.index("data: scikit-learn load_digits") < out.index("test accuracy")
    # one line an epoch, with the rate it trained at: no step counter to overshoot (48/41)
    assert re.search(r"^epoch 1/1: accuracy [\d.]+, loss [\d.]+, .*learning rate ", out, re.M)
    assert "360 test samples" in out  # digits' 20% split of 1,797
    per_class = out.split("per class (train+validation/test): ")[1].splitlines()[0]
    pairs = [item.split()[1].split("/") for item in per_class.split(", ")]
    assert len(pairs) == 10 and sum(int(b) for _, b in pairs) == 360
    assert sum(int(a) for a, _ in pairs) == 1797 - 360


def test_errors_beside_the_explain_thread(tmp_path, monkeypatch):
    """A failing test evaluation waits for the explain thread (nothing keeps running behind
    the error); a failing explain figure still leaves metrics.json and the charts."""
    import cnnbp.report.explain as explain
    from cnnbp.train import fit, results
    waiting, drawn = threading.Event(), threading.Event()
    real_wait = results.wait

    def wait(futures):  # the run waits on the explain thread
        waiting.set()
        return real_wait(futures)

    def slow(run_path, *args, **kwargs):
        # finishes only once the failed evaluation waits for it: had the error gone out
        # without waiting, ``drawn`` would still be unset when it arrives
        if waiting.wait(timeout=120):
            drawn.set()
        return []

    def broken(*args, **kwargs):
        raise RuntimeError("test evaluation broke")

    monkeypatch.setattr(explain, "figures", slow)
    monkeypatch.setattr(results, "wait", wait)
    monkeypatch.setattr(results, "predict_test", broken)
    with pytest.raises(RuntimeError, match="test evaluation broke"):
        fit.train(load("digits", ["training.epochs=1"]), "digits", tmp_path / "a", quiet=True)
    assert drawn.is_set()

    def failing(run_path, *args, **kwargs):
        raise ValueError("explain broke")

    monkeypatch.undo()
    monkeypatch.setattr(explain, "figures", failing)
    with pytest.raises(ValueError, match="explain broke"):
        fit.train(load("digits", ["training.epochs=1"]), "digits", tmp_path / "b", quiet=True)
    for name in ("metrics.json", "curves.png", "confusion.png", "model.keras"):
        assert (tmp_path / "b" / name).is_file(), name


def test_a_checkpoint_stores_the_best_weights_once_when_they_are_this_epochs(tmp_path):
    """Best weights that are this epoch's are not written twice (a VGG-11 checkpoint is
    1.5 GB instead of 2 GB); either way a resume gets the best weights back."""
    from cnnbp.train import checkpoints, fit
    session = fit.prepare(load("digits", QUICK), "digits", tmp_path / "r")
    model = fit.compile_model(session)
    model.optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    older = [w + 1.0 for w in weights]
    same = checkpoints.checkpoint_arrays(model, weights, weights)
    apart = checkpoints.checkpoint_arrays(model, weights, older)
    best_keys = lambda arrays: [k for k in arrays if k[0] == "b" and k[1:].isdigit()]
    assert "best_is_w" in same and best_keys(same) == []
    assert "best_is_w" not in apart and len(best_keys(apart)) == len(weights)
    for arrays, best in ((same, weights), (apart, older)):
        checkpoints.write_checkpoint(session.run, "state/epoch-1.npz", arrays)
        got_best = checkpoints.restore_state(session.run.path / "state/epoch-1.npz", model)
        for got, want in zip(got_best, best, strict=True):
            np.testing.assert_array_equal(got, want)
    session.pipelines.close()


def test_an_epoch_is_committed_even_when_a_later_callback_fails(tmp_path, monkeypatch):
    """Checkpoints are written on a thread beside the next epoch; an error raised after an
    epoch ended (here another callback's) still leaves that epoch saved and resumable."""
    import keras

    from cnnbp.train import checkpoints, fit
    real_write = checkpoints.write_checkpoint
    broke = threading.Event()

    def write(run, name, arrays):  # epoch 2's commit is still running when the error comes
        if name.endswith("epoch-2.npz"):
            assert broke.wait(timeout=120), "the later callback never ran"
        real_write(run, name, arrays)

    class Broken(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                broke.set()
                raise RuntimeError("a later callback broke")

    monkeypatch.setattr(checkpoints, "write_checkpoint", write)
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="a later callback broke"):
        fit.train(load("digits", ["training.epochs=4", "training.augment.translate=0"]),
                  "digits", out, quiet=True, callbacks=[Broken()])
    state = json.loads((out / "state" / "state.json").read_text())
    assert state["epoch"] == 2 and (out / "state" / "epoch-2.npz").is_file()
    assert [p.name for p in (out / "state").glob("epoch-*.npz")] == ["epoch-2.npz"]
    # a normal end returns only once the last epoch is saved, and an improving epoch's
    # checkpoint holds its weights once
    done = tmp_path / "done"
    fit.train(load("digits", ["training.epochs=2", "training.augment.translate=0",
                              "training.validation_split=0"]), "digits", done, quiet=True)
    state = json.loads((done / "state" / "state.json").read_text())
    assert state["epoch"] == 2 and state["wait"] == 0
    with np.load(done / "state" / "epoch-2.npz") as z:
        assert "best_is_w" in z.files and "b0" not in z.files
