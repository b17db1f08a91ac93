"""A run killed at any moment and resumed ends as the same run never killed: the same history
and bit-identical weights (CPU, same seed), dropout and every augmentation on."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.builder import load
from tests.conftest import ROOT, keras_file_weights
from tests.train.test_stream import SHAPE, folder, net, write_shards

# digits' net has a dropout layer and a translation; the rest of the augmentation turned on
AUGMENT = ["training.augment.flip=horizontal", "training.augment.rotate=10",
           "training.augment.contrast=0.2", "training.augment.brightness=0.1"]
SETTINGS = ["training.epochs=6", "training.batch_size=16", *AUGMENT]


def history(run):
    """history.csv without its timing column."""
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert rows, f"{run} has an empty history"
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(run, name="model.keras"):
    return [w for _, w in keras_file_weights(run / name)]


def assert_same_run(resumed, uninterrupted):
    assert history(resumed) == history(uninterrupted)
    for name in ("model.keras", "best.keras"):
        a, b = weights(resumed, name), weights(uninterrupted, name)
        assert len(a) == len(b) > 0
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), f"{name} differs"
    loss = lambda run: json.loads((run / "metrics.json").read_text())["test_loss"]
    assert loss(resumed) == loss(uninterrupted)


def cli(*args):
    return [sys.executable, "-u", str(ROOT / "cli.py"), "train", *args]


def killed_after(args, epoch: int, out):
    """Run ``cnnbp train ARGS`` and SIGKILL it as soon as it reports epoch ``epoch`` saved (its
    line is printed once the checkpoint and state are written), so it dies in a later epoch;
    return the stdout read so far and the epochs its state records."""
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"epoch {epoch}/"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    done = json.loads((out / "state" / "state.json").read_text())["epoch"]
    assert epoch <= done < 6 and not (out / "metrics.json").exists(), "not killed mid-run"
    return "".join(seen), done


def test_a_run_sigkilled_twice_and_resumed_equals_the_run_never_killed(tmp_path):
    """Killed mid-epoch after epoch 2 is saved, resumed, killed again an epoch on, resumed:
    the same as the run trained whole (here, in this process: the kills are real processes)."""
    from cnnbp.train.fit import train
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(load("digits", SETTINGS), "digits", whole, quiet=True, report=False)
    flags = [a for s in SETTINGS for a in ("--set", s)]

    _, first = killed_after(cli("digits", "--data", "digits", *flags, "-o", str(cut)), 2, cut)
    printed, done = killed_after(cli("--resume", str(cut)), first + 1, cut)  # a resume, killed
    assert printed.splitlines()[0] == f"resuming from epoch {first + 1} of 6 ({cut})"
    last = subprocess.run(cli("--resume", str(cut), "--quiet"), cwd=ROOT, capture_output=True,
                          text=True)
    assert last.returncode == 0, last.stderr[-3000:]
    assert last.stdout.splitlines()[0] == f"resuming from epoch {done + 1} of 6 ({cut})"
    assert_same_run(cut, whole)


class Interrupt(Exception):
    pass


def stopping_at(epoch: int):
    """A callback that interrupts training as ``epoch`` (0-based) begins, after the epochs
    before it are committed: a kill's effect, in this process."""
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            if e == epoch:
                raise Interrupt

    return Stop()


def generated(kind: str, root):
    """A small streamed source: a memory-mapped .npz, an image folder, or TFRecord shards."""
    if kind == "npz":
        rng = np.random.default_rng(0)
        x = rng.integers(0, 255, (96, *SHAPE), dtype=np.uint8)
        y = np.arange(96) % 3
        x[np.arange(96), :, :, y] = 220  # a learnable class: its colour
        np.savez(root / "d.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:],
                 class_names=["a", "b", "c"])
        return str(root / "d.npz")
    if kind == "folder":
        return str(folder(root / "pics", per_class=16))
    write_shards(root, with_test=True)
    return str(root / "*.tfrecord")


@pytest.mark.parametrize("kind, cache", [("npz", "none"), ("folder", "auto"),
                                         ("tfrecord", "auto")])
def test_streamed_sources_resume_to_the_same_run(tmp_path, kind, cache):
    """The streamed pipelines (rows read in a new order each epoch, files in a pixel store,
    records in a cache reshuffled within a buffer) draw each epoch from the seed and the
    epoch alone."""
    from cnnbp.train.fit import train
    from cnnbp.train.resume import resume
    spec = generated(kind, tmp_path)
    compiled = net("training.epochs=4", "training.augment.translate=0.1", f"training.cache={cache}",
                   *AUGMENT)
    train(compiled, spec, tmp_path / "whole", quiet=True, report=False)
    with pytest.raises(Interrupt):
        train(compiled, spec, tmp_path / "cut", quiet=True, report=False,
              callbacks=[stopping_at(2)])
    assert json.loads((tmp_path / "cut" / "state" / "state.json").read_text())["epoch"] == 2
    resume(tmp_path / "cut", quiet=True)
    assert_same_run(tmp_path / "cut", tmp_path / "whole")


def test_each_epoch_draws_its_own_order_and_augmentation_from_the_seed_and_epoch(keras):
    """Drawing epoch 3 first, or after epochs 0-2, gives the same batches; other epochs and
    seeds differ. (Before, the order came from how many passes this process had made.)"""
    from cnnbp.train.images import BadImages
    from cnnbp.train.pipeline import make_pipelines
    from cnnbp.train.sources import load_source
    from cnnbp.train.stats import fit_preprocessing
    compiled = load("digits", ["training.batch_size=64", *AUGMENT])
    data = load_source("digits", compiled.network.input_shape)
    prep, _ = fit_preprocessing(data, compiled.network, BadImages(False), input_shape=[8, 8, 1],
                                domain="image", raw_max=16.0, scale=16.0,
                                class_names=list(data.class_names))

    def epoch(p, e):
        p.start_epoch(e)
        return np.concatenate([np.asarray(x) for x, _ in p.train])

    first = make_pipelines(data, prep, compiled.network)
    later = [epoch(first, e) for e in range(4)]
    fresh = epoch(make_pipelines(data, prep, compiled.network), 3)
    assert np.array_equal(fresh, later[3])
    assert not any(np.array_equal(later[3], x) for x in later[:3])
    assert fresh.shape == later[0].shape == (first.train_size, 8, 8, 1)


def test_augmentation_is_a_function_of_its_key_alone(keras):
    import tensorflow as tf

    from cnnbp.builder import ir
    from cnnbp.train.augment import make_augment
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype("float32")
    augment = make_augment(ir.Augment(translate=0.2, rotate=15, flip="both", contrast=0.2,
                                      brightness=0.1), (8, 8, 1), seed=0)
    draw = lambda *key: np.asarray(augment(x, None, key=tf.constant(key, tf.int64))[0])
    first = draw(0, 5)
    draw(0, 6)  # draws in between change nothing
    assert np.array_equal(draw(0, 5), first)
    assert not np.array_equal(draw(0, 6), first) and not np.array_equal(first, x)
