"""Keras 3 backends: the builder, its custom layers and ``fit`` on arrays run on JAX with no
TensorFlow installed (as on a GPU machine that has JAX and CUDA only), and what JAX trained
exports like any other run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnbp.builder import load, load_expression

ROOT = Path(__file__).resolve().parents[2]
# Every custom layer: GELU (erf), LRN, and the -inf edge padding of a ceil-mode pool.
CUSTOM = ("INPUT(9x9x6)-CONV(6, 3, pad=1)-GELU-LRN(5, alpha=0.01, beta=0.75, bias=2)-"
          "POOL(3, 2, rounding=ceil)-FC(7)-SOFTMAX")
# Run in a child with KERAS_BACKEND=jax; importing TensorFlow there fails as if it were absent.
CHILD = r'''
import json, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
from cnnbp.cli import main
job = json.loads(sys.argv[1])
codes = [main(argv) for argv in job["commands"]]
if job.get("custom"):
    from cnnbp.builder import load_expression
    from cnnbp.builder.keras_builder import build_model
    model = build_model(load_expression(job["custom"]).network)
    x = np.random.default_rng(3).normal(size=(4, 9, 9, 6)).astype("float32")
    np.savez(job["out"], x=x, y=np.asarray(model(x)),
             **{f"w{i}": w for i, w in enumerate(model.get_weights())})
import keras
print(json.dumps({"codes": codes, "backend": keras.backend.backend(),
                  "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
'''


def jax_child(job: dict, tmp_path) -> tuple[dict, subprocess.CompletedProcess]:
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT.parent)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1]), done


def test_jax_trains_and_resumes_without_tensorflow_and_the_run_exports(tmp_path, keras):
    """On JAX: train digits (with its translate augmentation) for one epoch, extend the run to
    two with --resume, and build every custom layer; then, back on TensorFlow, the run exports
    at the 1e-5 parity bar and the custom layers compute what JAX computed."""
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.export.bundle import export_bundle
    run = tmp_path / "run"
    result, done = jax_child({
        "commands": [["train", "digits", "--data", "digits", "-o", str(run), "--epochs", "1",
                      "--quiet"],
                     ["train", "--resume", str(run), "--epochs", "2", "--quiet"]],
        "custom": CUSTOM, "out": str(tmp_path / "custom.npz")}, tmp_path)
    assert result == {"codes": [0, 0], "backend": "jax", "tensorflow_loaded": False}, \
        done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["xla"] is True
    assert metrics["compile_cache"] == os.environ["CNNBP_JAX_CACHE"]  # tests/conftest.py's
    assert metrics["device"] == "CPU (jax)" and "tensorflow" not in metrics["versions"]
    assert metrics["epochs"] == 2 and metrics["test_accuracy"] > 0.8
    assert [row["epoch"] for row in json.loads((run / "state" / "state.json").read_text())[
        "history"]] == [1, 2]

    page = (run / "report.html").read_text()
    assert "trained on the jax backend" in page and "cnnbp report" in page  # figures: on TF

    exported = export_bundle(run, tmp_path / "bundle", with_variants=False)
    assert exported.report.passed and exported.report.max_abs <= 1e-5

    saved = np.load(tmp_path / "custom.npz")
    model = build_model(load_expression(CUSTOM).network)
    model.set_weights([saved[f"w{i}"] for i in range(len(model.get_weights()))])
    np.testing.assert_allclose(np.asarray(model(saved["x"])), saved["y"], atol=1e-6)


def test_an_image_folder_on_jax_without_tensorflow_is_refused_with_the_fix(tmp_path):
    from PIL import Image
    for k in "ab":
        (tmp_path / "pics" / k).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), (200 * (k == "a"), 90, 40)).save(
                tmp_path / "pics" / k / f"{i}.png")
    result, done = jax_child({"commands": [[
        "train", "digits", "--data", str(tmp_path / "pics"), "-o", str(tmp_path / "run"),
        "--set", "input=[12, 12, 3]", "--set", "classes=2", "--set", "class_names=[a, b]"]]},
        tmp_path)
    assert result["codes"] == [2]
    message = done.stderr.strip()
    assert "tf.data" in message and "KERAS_BACKEND=jax" in message and ".npz" in message
    assert "Traceback" not in message and not (tmp_path / "run").exists()


def test_array_batches_split_like_tf_data_and_reshuffle_each_epoch(keras):
    """The PyDataset path (any backend) holds out the validation rows the tf.data path holds
    out, normalizes the same way, and draws every training row once per epoch in a new order."""
    from cnnbp.train.images import BadImages
    from cnnbp.train.pipeline import make_pipelines
    from cnnbp.train.sources import load_source
    from cnnbp.train.stats import fit_preprocessing
    net = load("digits", ["training.augment.translate=0", "training.batch_size=50"]).network
    data = load_source("digits", net.input_shape)
    prep, _ = fit_preprocessing(data, net, BadImages(False), input_shape=list(net.input_shape),
                                domain="image", raw_max=16.0, scale=16.0,
                                class_names=list(data.class_names))
    tf_path = make_pipelines(data, prep, net)
    arrays = make_pipelines(data, prep, net, backend="jax")
    assert (arrays.train_size, arrays.test_size) == (tf_path.train_size, tf_path.test_size)
    stack = lambda batches: [np.concatenate(parts) for parts in zip(*(
        (np.asarray(x), np.asarray(y)) for x, y in batches))]
    (xv, yv), (xv_tf, yv_tf) = stack(arrays.validation), stack(tf_path.validation)
    key = lambda x: np.lexsort(x.reshape(len(x), -1).T)
    np.testing.assert_allclose(xv[key(xv)], xv_tf[key(xv_tf)], atol=1e-6)
    np.testing.assert_array_equal(yv[key(xv)], yv_tf[key(xv_tf)])  # same rows, same labels
    epochs = []
    for _ in range(2):
        x, _ = stack(arrays.train[i] for i in range(len(arrays.train)))
        arrays.train.on_epoch_end()
        epochs.append(x)
    assert len(epochs[0]) == arrays.train_size
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled
    np.testing.assert_array_equal(epochs[0][key(epochs[0])], epochs[1][key(epochs[1])])


def test_array_batches_of_a_memory_mapped_npz_are_the_documented_formula(tmp_path, keras):
    """Raw uint8 rows of a memory-mapped .npz, drawn by the PyDataset path: each batch is
    ``(raw / scale - mean) / std`` (the record's formula, written out here) to float32 rounding."""
    from cnnbp.train.images import BadImages
    from cnnbp.train.pipeline import make_pipelines, mapped
    from cnnbp.train.sources import load_source
    from cnnbp.train.stats import fit_preprocessing
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "a.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    net = load_expression("INPUT(8x8x3)-CONV(4,3,pad=1)-RELU-POOL-FC(3)-SOFTMAX",
                          ["training.batch_size=16", "training.validation_split=0"]).network
    data = load_source(str(tmp_path / "a.npz"), net.input_shape)
    assert mapped(data.x_train)
    prep, _ = fit_preprocessing(data, net, BadImages(False), input_shape=list(net.input_shape),
                                domain="image", raw_max=255.0, scale=255.0,
                                class_names=["a", "b", "c"])  # a scale that tells raw apart
    test = make_pipelines(data, prep, net, backend="jax").test
    got = np.concatenate([np.asarray(xb) for xb, _ in test])
    mean, std = np.asarray(prep.mean), np.asarray(prep.std)
    want = (x[40:].astype("float64") / prep.scale - mean) / std
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
