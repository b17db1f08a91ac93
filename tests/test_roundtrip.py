"""Train → export → serve, for each kind of source: what `/classify` and `cnnbp predict` answer
for a raw sample equals the Keras model applied to what the training pipeline made of that
sample (same top-1, probabilities within 1e-5). And class names that are awkward in files
(spaces, commas, quotes, non-ASCII letters) survive every file and answer on the way.

The training side is read from the run itself: ``samples.npz`` holds the held-out rows exactly
as the training pipeline normalized them. Serving is checked against Keras on those rows, and
the rows against the documented formula ``(raw / scale - mean) / std`` written out here.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.serve.conftest import Server

pytestmark = pytest.mark.usefixtures("keras")

AWKWARD = sorted(["ankle boot", "a, b", "\"quoted\" 'x'", "Zürich ü"])  # folder order
RNG = np.random.default_rng(7)
NET_RGB = "INPUT(8x8x3)-CONV(4,3,pad=1)-RELU-POOL-FC(4)-SOFTMAX"
NET_GRAY = "INPUT(8x8x1)-CONV(4,3,pad=1)-RELU-POOL-FC(3)-SOFTMAX"
NET_1D = "INPUT(40x1)-CONV(4,5,pad=2)-RELU-POOL-FC(3)-SOFTMAX"


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def train_and_export(base, name, data, *blueprint):
    from cnnbp import cli
    run, bundle = base / "runs" / name, base / "bundles" / name
    assert cli.main(["train", *blueprint, "--data", str(data), "--epochs", "2", "--quiet",
                     "-o", str(run)]) == 0
    assert cli.main(["export", str(run), "-o", str(bundle), "--no-variants",
                     "--triton", str(base / "triton")]) == 0
    return run, bundle


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Four trained and exported runs, each with the raw test samples it was trained against."""
    base = tmp_path_factory.mktemp("roundtrip")
    raw = {}
    # an image folder with explicit train/ and test/ splits, RGB, of sizes other than the net's
    folder = base / "photos"
    for split, count in (("train", 6), ("test", 2)):
        for k, label in enumerate(AWKWARD):
            (folder / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = (RNG.random((14, 20, 3)) * 120 + 40 * k).astype("uint8")
                (folder / split / label / f"{i}.png").write_bytes(png(pixels))
    raw["folder"] = [f.read_bytes() for f in sorted((folder / "test").glob("*/*.png"))]
    from cnnbp import cli
    assert cli.main(["train", "-e", NET_RGB, "--data", str(folder), "--epochs", "2",
                     "--quiet", "-o", str(base / "runs" / "folder")]) == 0
    shutil.rmtree(folder)  # export reads only the run, so the data may be gone
    assert cli.main(["export", str(base / "runs" / "folder"), "-o",
                     str(base / "bundles" / "folder"), "--no-variants",
                     "--triton", str(base / "triton")]) == 0
    raw["folder_deleted"] = not folder.exists()
    # a .npz of raw 0-255 uint8 pixels, trained in those units (scale 1)
    x = (RNG.random((60, 8, 8)) * 255).astype("uint8")
    y = (x.reshape(60, -1).mean(axis=1) > 127).astype("int64") + (x[:, 0, 0] > 200)
    np.savez(base / "u8.npz", x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:])
    raw["npz"] = x[48:]
    train_and_export(base, "npz", base / "u8.npz", "-e", NET_GRAY)
    # 1-D signals
    s = RNG.normal(3.0, 2.0, (60, 40)).astype("float32")
    t = (s.mean(axis=1) > 3).astype("int64") + (s[:, 0] > 4)
    np.savez(base / "signals.npz", x_train=s[:48], y_train=t[:48], x_test=s[48:], y_test=t[48:])
    raw["signal"] = s[48:]
    train_and_export(base, "signal", base / "signals.npz", "-e", NET_1D)
    # the embedded digits (raw gray levels 0..16)
    train_and_export(base, "digits", "digits", "digits")
    server = Server(base / "bundles")
    yield base, raw, server
    server.stop()


def keras_on_training_rows(base, name):
    """(rows as the training pipeline normalized them, Keras probabilities for them)."""
    import keras
    rows = np.load(base / "runs" / name / "samples.npz")["x_test"]
    model = keras.models.load_model(base / "runs" / name / "model.keras")
    return rows, np.asarray(model(rows, training=False))


def record(base, name) -> dict:
    return json.loads((base / "runs" / name / "preprocess.json").read_text(encoding="utf-8"))


def classify(server, name, body: bytes, kind: str) -> dict:
    req = urllib.request.Request(f"{server.url}/v2/models/{name}/classify?top_k=10", data=body,
                                 headers={"content-type": kind}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def as_vector(answer: dict, labels: list[str]) -> np.ndarray:
    """A classify answer's top-k as a probability vector in labels.txt order."""
    got = np.full(len(labels), np.nan)
    for t in answer["top_k"]:
        assert labels[t["index"]] == t["label"]
        got[t["index"]] = t["probability"]
    return got


def assert_matches_a_training_row(probabilities, expected_rows):
    """The answer equals Keras on one of the training pipeline's rows (random data: exactly one)."""
    gaps = np.abs(expected_rows - probabilities).max(axis=1)
    best = int(gaps.argmin())
    assert gaps[best] <= 1e-5, f"closest training row differs by {gaps[best]:.3g}"
    assert int(np.argmax(probabilities)) == int(expected_rows[best].argmax())
    return best


def predict_local(bundle, path) -> np.ndarray:
    """What `cnnbp predict BUNDLE FILE` computes (the CLI prints it rounded)."""
    from cnnbp.serve.client import predict_local as local
    result = local(str(bundle), [str(path)], top_k=10)[0]
    labels = json.loads((bundle / "preprocess.json").read_text(encoding="utf-8"))["class_names"]
    return as_vector(result, labels)


@pytest.mark.parametrize("name", ["folder", "npz"])
def test_images_are_served_as_trained(made, name, tmp_path):
    base, raw, server = made
    rows, expected = keras_on_training_rows(base, name)
    labels = record(base, name)["class_names"]
    samples = raw[name]
    matched = set()
    for i, sample in enumerate(samples):
        body = sample if name == "folder" else png(sample)
        served = as_vector(classify(server, name, body, "image/png"), labels)
        matched.add(assert_matches_a_training_row(served, expected))
        path = tmp_path / f"{i}.png"
        path.write_bytes(body)
        np.testing.assert_allclose(predict_local(base / "bundles" / name, path), served,
                                   atol=1e-6)
    assert len(matched) == len(samples)  # each sample found its own row


def test_uint8_npz_rows_follow_the_formula_in_raw_units(made):
    """The 255x skew of old: a uint8 .npz trains on 0..255 (scale 1), so serving must not
    divide pixels by 255 on top."""
    base, raw, _ = made
    p = record(base, "npz")
    assert p["scale"] == 1.0 and p["raw_max"] == 255.0
    rows = np.load(base / "runs" / "npz" / "samples.npz")["x_test"]
    by_hand = (raw["npz"][..., None].astype("float64") / p["scale"] - p["mean"]) / p["std"]
    np.testing.assert_allclose(rows, by_hand, atol=1e-5)


def test_signals_are_served_as_trained(made, tmp_path):
    base, raw, server = made
    rows, expected = keras_on_training_rows(base, "signal")
    labels = record(base, "signal")["class_names"]
    for i, signal in enumerate(raw["signal"]):
        body = json.dumps({"signal": signal.tolist()}).encode()
        served = as_vector(classify(server, "signal", body, "application/json"), labels)
        assert_matches_a_training_row(served, expected)
        path = tmp_path / f"{i}.npy"
        np.save(path, signal)
        np.testing.assert_allclose(predict_local(base / "bundles" / "signal", path), served,
                                   atol=1e-6)


def test_digits_are_served_as_trained(made, tmp_path, keras):
    """digits' raw units are gray levels 0..16: training rows must be that formula of whole
    levels, and a PNG (pixels 0..255) is read as raw = pixels / 255 * 16."""
    base, _, server = made
    p = record(base, "digits")
    rows = np.load(base / "runs" / "digits" / "samples.npz")["x_test"]
    levels = (rows * np.float32(p["std"]) + np.float32(p["mean"])) * p["scale"]
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert levels.min() > -1e-3 and levels.max() < 16 + 1e-3
    pixels = (np.round(levels[0, :, :, 0]) * 255 / 16).round().astype("uint8")
    served = as_vector(classify(server, "digits", png(pixels), "image/png"), p["class_names"])
    x = ((pixels.astype("float64") / 255 * 16 / p["scale"] - p["mean"][0]) / p["std"][0])
    model = keras.models.load_model(base / "runs" / "digits" / "model.keras")
    expected = np.asarray(model(x[None, :, :, None].astype("float32"), training=False))[0]
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert served.argmax() == expected.argmax()
    (tmp_path / "d.png").write_bytes(png(pixels))
    np.testing.assert_allclose(predict_local(base / "bundles" / "digits", tmp_path / "d.png"),
                               served, atol=1e-6)


def test_awkward_class_names_round_trip_everywhere(made):
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    base, raw, server = made
    bundle = base / "bundles" / "folder"
    assert (base / "runs" / "folder" / "labels.txt").read_text(encoding="utf-8") == \
        "".join(f"{n}\n" for n in AWKWARD)
    assert (bundle / "labels.txt").read_bytes() == \
        (base / "runs" / "folder" / "labels.txt").read_bytes()
    meta = {p.key: p.value for p in onnx.load(str(bundle / "model.onnx")).metadata_props}
    assert json.loads(meta["class_names"]) == AWKWARD
    assert json.loads(meta["preprocess"])["class_names"] == AWKWARD
    config = text_format.Parse((base / "triton" / "folder" / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert list(config.output[0].dims) == [len(AWKWARD)]
    assert config.output[0].label_filename == "labels.txt"
    assert (base / "triton" / "folder" / "labels.txt").read_text(encoding="utf-8").splitlines() \
        == AWKWARD
    with urllib.request.urlopen(f"{server.url}/v2/models/folder", timeout=10) as resp:
        metadata = json.loads(resp.read())
    assert metadata["parameters"]["class_names"] == AWKWARD
    assert metadata["outputs"][0]["shape"] == [-1, len(AWKWARD)]
    answer = classify(server, "folder", raw["folder"][0], "image/png")
    assert sorted(t["label"] for t in answer["top_k"]) == sorted(AWKWARD)
    assert all(t["label"] == AWKWARD[t["index"]] for t in answer["top_k"])


def test_predict_prints_awkward_labels(made, tmp_path):
    base, _, _ = made
    image = tmp_path / "x.png"
    image.write_bytes(png((RNG.random((8, 8, 3)) * 255).astype("uint8")))
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict",
                           str(base / "bundles" / "folder"), str(image), "--top-k", "4"],
                          capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    for name in AWKWARD:
        assert f"{name} (" in proc.stdout


def test_a_run_exports_after_its_data_is_deleted(made):
    """The folder run was exported after its images were removed (see the fixture)."""
    base, raw, _ = made
    assert raw["folder_deleted"]
    report = json.loads((base / "bundles" / "folder" / "validation.json").read_text())
    assert report["passed"] and {c["inputs"] for c in report["cases"]} == {"random", "held-out"}
