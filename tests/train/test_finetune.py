"""Fine-tuning controls: ``training.freeze`` (checked against the net's stages), the head's own
learning rate (measured as step sizes on TensorFlow and JAX), frozen stages unchanged after
training with their BN layers in inference mode, unfreezing at epoch N, and a run resumed on
either side of the unfreeze equal to the run never stopped."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.builder import load
from cnnbp.builder.errors import BlueprintError
from cnnbp.train.finetune import describe, left_frozen, phases
from tests.conftest import ROOT

QUICK = ["training.augment.translate=0", "training.schedule=constant", "training.batch_size=64"]
# digits with a BN layer in each stage: the frozen stage's BN must keep its moving statistics
BN_PATTERN = "pattern='[(CONV-BN-RELU)*N-POOL]*M-DROPOUT-(FC-RELU)*K-SOFTMAX'"


def test_check_names_a_stage_the_net_does_not_have_and_the_valid_ones():
    with pytest.raises(BlueprintError) as info:
        load("digits", ["training.freeze=[stage1, stage9]"])
    message = str(info.value)
    assert "training.freeze[1]" in message and "stage9 is not a stage" in message
    assert "stages are stage1, stage2" in message and "\n" not in message.strip()
    with pytest.raises(BlueprintError, match=r"training.freeze.until: .*stage3 is not a stage"):
        load("digits", ["training.freeze={until: stage3}"])
    with pytest.raises(BlueprintError, match="training.freeze: .*got 'feature'"):
        load("digits", ["training.freeze=feature"])


def test_freeze_spellings_name_stages_in_the_nets_order():
    stages = lambda spec: load("vgg16", [f"training.freeze={spec}"]).network.training.freeze
    assert stages("features") == ("stage1", "stage2", "stage3", "stage4", "stage5")
    assert stages("{until: stage3}") == ("stage1", "stage2", "stage3")
    assert stages("[stage4, stage2]") == ("stage2", "stage4")
    assert load("vgg16").network.training.freeze == ()


def test_unfreeze_after_needs_frozen_stages_and_a_later_epoch():
    with pytest.raises(BlueprintError, match="training.unfreeze_after: .*nothing is frozen"):
        load("digits", ["training.unfreeze_after=2"])
    with pytest.raises(BlueprintError, match=r"unfreeze_after: .* 15 must be fewer than the 15"):
        load("digits", ["training.freeze=features", "training.unfreeze_after=15"])
    t = load("digits", ["training.freeze=features", "training.unfreeze_after=3"]).network.training
    assert (t.unfreeze_after, t.freeze) == (3, ("stage1", "stage2"))
    # a freeze that names no stage of the net is the one problem reported, not also this
    with pytest.raises(BlueprintError) as info:
        load("digits", ["training.freeze={until: stage3}", "training.unfreeze_after=2"])
    assert "stage3 is not a stage" in str(info.value)
    assert "unfreeze_after" not in str(info.value)


def test_fit_runs_once_per_phase_split_at_the_unfreeze():
    t = load("digits", ["training.epochs=5", "training.freeze=features",
                        "training.unfreeze_after=2"]).network.training
    assert phases(t, 0) == [(0, 2), (2, 5)]
    assert phases(t, 1) == [(1, 2), (2, 5)]
    assert phases(t, 2) == [(2, 5)] and phases(t, 4) == [(4, 5)]
    assert phases(t, 5) == []  # finished: nothing to fit
    assert phases(load("digits").network.training, 3) == [(3, 15)]


def test_the_line_training_prints_says_what_is_frozen_until_when_and_the_head_rate():
    line = describe(load("digits", ["training.freeze=features", "training.unfreeze_after=2",
                                    "training.head_learning_rate=0.01",
                                    "training.learning_rate=0.001"]))
    assert line == ("fine-tuning: stage1, stage2 frozen for 2 epoch(s), trained from epoch 3 "
                    "on (unfreeze_after); note: there is no weights.from, so the frozen stages "
                    "keep their random initial weights; head at learning rate 0.01, the rest at "
                    "0.001")
    assert describe(load("digits", ["training.freeze=[stage2]"])).startswith(
        "fine-tuning: stage2 frozen throughout; note: there is no weights.from")
    assert describe(load("digits")) is None


def test_a_run_ending_before_its_unfreeze_says_the_stages_stayed_frozen():
    t = load("digits", ["training.epochs=5", "training.freeze=features",
                        "training.unfreeze_after=2"]).network.training
    assert left_frozen(t, 1) == ("the run ended after epoch 1, before epoch 3 where stage1, "
                                 "stage2 would have been unfrozen: they stayed frozen throughout")
    assert left_frozen(t, 2) is not None  # epoch 3, the first unfrozen one, never ran
    assert left_frozen(t, 3) is None and left_frozen(t, 5) is None
    assert left_frozen(load("digits", ["training.freeze=features"]).network.training, 1) is None


def test_a_whole_number_learning_rate_makes_an_optimizer(keras):
    """``--set training.learning_rate=5`` (found raising the early stop in the frozen phase)
    was an int, which Keras's optimizers refused: an internal error."""
    from cnnbp.train import schedules
    for extra in ([], ["training.freeze=features", "training.head_learning_rate=5"]):
        t = load("digits", ["training.learning_rate=5", "training.schedule=constant",
                            *extra]).network.training
        assert float(schedules.optimizer(t, 1).learning_rate) == 5.0


def test_multi_worker_training_refuses_the_fine_tuning_keys(tmp_path, monkeypatch):
    from cnnbp.contract.errors import UsageError
    from cnnbp.train.launch import launch
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 0}}))
    for setting in ("training.freeze=[stage1]", "training.head_learning_rate=0.01"):
        with pytest.raises(UsageError, match="TF_CONFIG names 2 workers.*training.freeze"):
            launch(load("digits", [setting]), "digits", tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


# One Adam step on a fixed batch, through Keras's own train step, in a child on either backend.
# Adam's first step moves each weight by lr * g / (|g| + eps), i.e. by lr wherever |g| >> eps.
STEP_CHILD = r'''
import json, sys
import numpy as np
import keras
from cnnbp.builder import load
from cnnbp.builder.keras_builder import build_model
from cnnbp.train import finetune, schedules
x = np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype("float32")
y = np.eye(10, dtype="float32")[np.arange(32) % 10]

def steps(settings):
    net = load("digits", settings).network
    model = build_model(net)
    model.compile(optimizer=schedules.optimizer(net.training, 1),
                  loss="categorical_crossentropy")
    finetune.start(model, net.training)
    before = {l.name: np.array(l.get_weights()[0]) for l in model.layers if l.get_weights()}
    model.train_on_batch(x, y)
    return {n: float(np.abs(model.get_layer(n).get_weights()[0] - w).max())
            for n, w in before.items()}

print(json.dumps({"backend": keras.backend.backend(),
                  "runs": [steps(json.loads(arg)) for arg in sys.argv[1:]]}))
'''


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_head_steps_at_its_own_learning_rate(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT.parent)}
    base = ["training.optimizer=adam", "training.learning_rate=0.001"]
    runs = [base + ["training.head_learning_rate=0.01"], base]
    done = subprocess.run([sys.executable, "-c", STEP_CHILD, *map(json.dumps, runs)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    fitted, plain = out["runs"]
    assert set(fitted) == {"stage1_conv1", "stage1_conv2", "stage2_conv1", "stage2_conv2",
                           "fc1", "predictions"}
    for name, step in fitted.items():
        want = 0.01 if name in ("fc1", "predictions") else 0.001
        assert step == pytest.approx(want, rel=0.01), (name, step)
    # without it every layer steps at learning_rate (the control: the same measurement)
    assert all(s == pytest.approx(0.001, rel=0.01) for s in plain.values()), plain


def test_a_frozen_stage_is_unchanged_and_its_bn_stays_in_inference_mode(tmp_path, keras):
    """stage1 (CONV, BN) frozen for a whole run: the saved model's stage1 weights, BN moving
    statistics included, are the initial ones; stage2's and the head's have moved."""
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.train.fit import train
    compiled = load("digits", [BN_PATTERN, "training.epochs=1", "training.freeze=[stage1]",
                               *QUICK])
    initial = build_model(compiled.network)  # weights.seed: the run starts from these
    train(compiled, "digits", tmp_path / "run", quiet=True, report=False)
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    for layer in initial.layers:
        if not layer.get_weights():
            continue
        moved = [not np.array_equal(a, b) for a, b in
                 zip(layer.get_weights(), saved.get_layer(layer.name).get_weights())]
        if layer.name.startswith("stage1_"):
            assert not any(moved), f"{layer.name} changed while frozen"
        else:
            assert all(moved), f"{layer.name} did not train: {moved}"
    assert all(layer.trainable for layer in saved.layers)  # frozen is a training setting
    assert {layer.name for layer in initial.layers if layer.get_weights()} >= {
        "stage1_conv1", "stage1_bn1", "stage2_bn2", "predictions"}


def _watch(keras, names):
    """A callback recording, per epoch, whether each layer trained and its first weight."""
    class Watch(keras.callbacks.Callback):
        trainable, kernels = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.trainable.append({n: self.model.get_layer(n).trainable for n in names})

        def on_epoch_end(self, epoch, logs=None):
            self.kernels.append({n: self.model.get_layer(n).get_weights()[0] for n in names})
    return Watch()


def test_the_frozen_stages_train_from_epoch_n_on(tmp_path, keras):
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.train.fit import train
    compiled = load("digits", ["training.epochs=3", "training.freeze=features",
                               "training.unfreeze_after=2", *QUICK])
    start = build_model(compiled.network).get_layer("stage2_conv2").get_weights()[0]
    watch = _watch(keras, ["stage1_conv1", "stage2_conv2", "predictions"])
    train(compiled, "digits", tmp_path / "run", quiet=True, report=False, callbacks=[watch])
    assert [e["stage1_conv1"] for e in watch.trainable] == [False, False, True]
    assert all(e["predictions"] for e in watch.trainable)
    kernels = [start] + [e["stage2_conv2"] for e in watch.kernels]
    assert np.array_equal(kernels[0], kernels[1]) and np.array_equal(kernels[1], kernels[2])
    assert not np.array_equal(kernels[2], kernels[3])  # epoch 3 trained it
    heads = [e["predictions"] for e in watch.kernels]
    assert not np.array_equal(heads[0], heads[1])


def test_training_output_marks_the_unfreeze_and_patience_restarts_there(
        tmp_path, keras, capsys):
    """early_stopping: 1 with the unfreeze at epoch 2, where the stages start at a rate that
    makes the loss jump: the unfreeze epoch does not count against patience, so the run
    reaches epoch 3 (counted, it stopped at epoch 2)."""
    from cnnbp.train.fit import train
    compiled = load("digits", ["training.epochs=3", "training.freeze=features",
                               "training.unfreeze_after=1", "training.early_stopping=1",
                               "training.optimizer=adam", "training.learning_rate=0.5",
                               "training.head_learning_rate=0.001", *QUICK])
    train(compiled, "digits", tmp_path / "run", report=False)
    out = capsys.readouterr().out
    assert "fine-tuning: stage1, stage2 frozen for 1 epoch(s)" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [("stage1, stage2 unfrozen" in line) for line in epochs] == [False, True, False]
    assert json.loads((tmp_path / "run" / "state" / "state.json").read_text())["epoch"] == 3


def test_a_run_stopped_early_before_its_unfreeze_says_so(tmp_path, keras, capsys):
    """A rate of 1e-9 moves the loss by less than counts: early_stopping: 1 ends the run at
    epoch 2, while the stages are still frozen (they would train from epoch 3)."""
    from cnnbp.train.fit import train
    compiled = load("digits", ["training.epochs=4", "training.freeze=features",
                               "training.unfreeze_after=2", "training.early_stopping=1",
                               "training.learning_rate=1e-9", *QUICK])
    train(compiled, "digits", tmp_path / "run", report=False)
    assert json.loads((tmp_path / "run" / "state" / "state.json").read_text())["epoch"] == 2
    assert ("the run ended after epoch 2, before epoch 3 where stage1, stage2 would have been "
            "unfrozen: they stayed frozen throughout") in capsys.readouterr().out


class Stop(Exception):
    """Raised by a callback after an epoch was committed: the run is cut there."""


def _history(run):
    rows = list(csv.DictReader((run / "history.csv").open()))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.slow  # four 3-epoch runs and two resumes: about a minute on 2 cores
@pytest.mark.parametrize("unfreeze_after, cut_after", [(2, 1), (1, 2)])
def test_a_run_resumed_on_either_side_of_the_unfreeze_equals_the_run_never_cut(
        tmp_path, keras, unfreeze_after, cut_after):
    """Cut before the unfreeze (the resume must unfreeze at epoch N) or after it (the resume
    starts unfrozen, with the optimizer state saved from the unfrozen epoch): the same
    history and bit-identical weights as the whole run."""
    from cnnbp.train.fit import train
    from cnnbp.train.resume import resume
    from tests.conftest import keras_file_weights
    settings = ["training.epochs=3", "training.freeze=[stage1]",
                f"training.unfreeze_after={unfreeze_after}",
                "training.head_learning_rate=0.004", *QUICK]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(load("digits", settings), "digits", whole, quiet=True, report=False)

    class Cut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == cut_after:
                raise Stop

    with pytest.raises(Stop):
        train(load("digits", settings), "digits", cut, quiet=True, report=False,
              callbacks=[Cut()])
    assert json.loads((cut / "state" / "state.json").read_text())["epoch"] == cut_after
    resume(cut, quiet=True)
    assert _history(cut) == _history(whole)
    a = keras_file_weights(cut / "model.keras")
    b = keras_file_weights(whole / "model.keras")
    assert [n for n, _ in a] == [n for n, _ in b] and len(a) > 0
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


# On JAX, in a child: a frozen stage (CONV, BN) unchanged by a run; and a run across the
# unfreeze, cut after epoch 1 and resumed, equal to the whole run (JAX's fit hands the
# optimizer the values of the variables that train now only).
JAX_CHILD = r'''
import json, sys
from pathlib import Path
import numpy as np
import keras
from cnnbp.builder import load
from cnnbp.builder.keras_builder import build_model
from cnnbp.train.fit import train
from cnnbp.train.resume import resume
out, quick, bn = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
compiled = load("digits", [bn, "training.epochs=1", "training.freeze=[stage1]", *quick])
initial = build_model(compiled.network)
train(compiled, "digits", out / "frozen", quiet=True, report=False)
saved = keras.saving.load_model(out / "frozen" / "model.keras", compile=False)
moved = {l.name: [not np.array_equal(a, b) for a, b in
                  zip(l.get_weights(), saved.get_layer(l.name).get_weights())]
         for l in initial.layers if l.get_weights()}
settings = ["training.epochs=3", "training.freeze=[stage1]", "training.unfreeze_after=2",
            "training.head_learning_rate=0.004", *quick]
train(load("digits", settings), "digits", out / "whole", quiet=True, report=False)
class Stop(Exception):
    pass
class Cut(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Stop
try:
    train(load("digits", settings), "digits", out / "cut", quiet=True, report=False,
          callbacks=[Cut()])
except Stop:
    pass
resume(out / "cut", quiet=True)
print(json.dumps({"backend": keras.backend.backend(), "moved": moved}))
'''


@pytest.mark.slow  # a 1-epoch and three 3-epoch-or-less runs on JAX: about a minute on 2 cores
def test_freeze_on_jax_keeps_the_stage_and_resumes_exactly(tmp_path):
    pytest.importorskip("jax")
    from tests.conftest import keras_file_weights
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT.parent)}
    done = subprocess.run([sys.executable, "-c", JAX_CHILD, str(tmp_path), json.dumps(QUICK),
                           BN_PATTERN],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert {"stage1_conv1", "stage1_bn1", "predictions"} <= set(out["moved"])
    for name, moved in out["moved"].items():
        if name.startswith("stage1_"):
            assert not any(moved), f"{name} changed while frozen"
        else:
            assert all(moved), f"{name} did not train: {moved}"
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    assert json.loads((cut / "state" / "state.json").read_text())["epoch"] == 3
    assert _history(cut) == _history(whole)
    a, b = keras_file_weights(cut / "model.keras"), keras_file_weights(whole / "model.keras")
    assert [n for n, _ in a] == [n for n, _ in b] and len(a) > 0
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
