"""``cnnbp train --weights``: a new run starts from the file (and records where it is), takes
the source's normalisation from ``weights.normalize``, and a resumed run never reads the file
again."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from cnnbp.builder import load, load_resolved
from cnnbp.contract import records
from cnnbp.contract.preprocessing import Preprocessing
from tests.conftest import ROOT


def cnnbp(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_a_run_starts_from_the_weights_and_resumes_without_them(keras, tmp_path):
    from cnnbp.builder.keras_builder import build_model
    source = build_model(load("digits", ["weights.seed=5"]).network)
    path = tmp_path / "digits5.weights.h5"
    source.save_weights(str(path))
    out = tmp_path / "run"
    # a learning rate too small to move any weight: the trained model is the file's
    proc = cnnbp("train", "digits", "--data", "digits", "--epochs", "1", "--quiet",
                 "--weights", str(path), "--set", "training.learning_rate=1e-12",
                 "--set", "training.schedule=constant",
                 "--set", "weights.normalize.mean=[127.5]", "--set", "weights.normalize.std=[64]",
                 "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    layers = len(source.get_weights()) // 2  # digits: kernel and bias in every such layer
    assert f"weights from {path}: {layers} layers loaded\n" in proc.stdout
    resolved = yaml.safe_load((out / "blueprint.yaml").read_text())
    assert resolved["weights"]["from"] == str(path)
    assert load_resolved(out).resolved["weights"]["normalize"] == {"mean": [127.5], "std": [64]}
    trained = keras.saving.load_model(out / "model.keras")
    fresh = build_model(load("digits").network)
    for ours, theirs, init in zip(trained.get_weights(), source.get_weights(),
                                  fresh.get_weights()):
        if theirs.ndim > 1:  # kernels: seed 5 is not the blueprint's seed 0 (biases are 0)
            assert np.abs(theirs - init).max() > 1e-3
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    prep = records.read(Preprocessing, out / "preprocess.json", "preprocessing record")
    pixels = np.float32([[0.0], [127.5], [255.0]])
    np.testing.assert_allclose(prep.apply(prep.raw_from_pixels(pixels)).ravel(),
                               [-127.5 / 64, 0.0, 127.5 / 64], atol=1e-5)
    # a bundle's blueprint drops the local path (model.onnx holds the weights), keeps the rest
    from cnnbp.export.source import load_source
    shipped = load_source(out).blueprint_text
    assert str(tmp_path) not in shipped and "digits5.weights.h5" in shipped.splitlines()[0]
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "blueprint.yaml").write_text(shipped)
    weights = load_resolved(tmp_path / "bundle").resolved["weights"]
    assert "from" not in weights and weights["normalize"] == {"mean": [127.5], "std": [64]}
    path.unlink()  # resuming must keep what the run trained, not read the file again
    proc = cnnbp("train", "--resume", str(out), "--epochs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "epochs" in proc.stdout and "weights from" not in proc.stdout


def test_weights_that_do_not_fit_are_refused_before_a_run_folder_is_made(keras, tmp_path):
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.commands import train
    from cnnbp.commands.assemble import parse, parser
    from cnnbp.contract.errors import ArtifactError
    path = tmp_path / "other.weights.h5"
    build_model(load("digits", ["layers.FC.units=64"]).network).save_weights(str(path))
    out = tmp_path / "run"
    args = parse(parser(), ["train", "digits", "--data", "digits", "--weights", str(path),
                            "-o", str(out)])
    with pytest.raises(ArtifactError, match=r"our FC layer fc1 has weights 256x128, 128 but"):
        train.run(args)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["other.weights.h5"]
