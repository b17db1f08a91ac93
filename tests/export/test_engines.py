"""pixels.onnx proved on engines we did not write (issue 22): for each kind of source, the raw
files or arrays a user has give the same top-1 and probabilities through `cnnbp predict` on the
bundle, plain ONNX Runtime on pixels.onnx fed the raw array (decoded pixels; digits' levels
0..16 as load_digits gives them; a float array's values in [0, 1]), OpenVINO on pixels.onnx, and
the stock tritonclient (HTTP and gRPC) sending that array as a UINT8 (FP32 for float arrays and
signals) ``pixels`` tensor to `cnnbp serve`
(within 1e-5; 1e-4 for OpenVINO). Images are decoded here the way the model card
documents: Pillow, JPEG draft at the smallest scale that covers the net's size, bilinear resize.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RNG = np.random.default_rng(11)
GRAY = "INPUT(8x8x1)-CONV(4,3,pad=1)-RELU-POOL-FC(3)-SOFTMAX"
RGB = "INPUT(8x8x3)-CONV(4,3,pad=1)-RELU-POOL-FC(3)-SOFTMAX"
SIGNAL = "INPUT(40x1)-CONV(4,5,pad=2)-RELU-POOL-FC(3)-SOFTMAX"
NAMES = ["square", "circle", "cross"]  # deliberately not in alphabetical order
FLOAT = ("floats", "signal")  # kinds whose raw values are float32


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def decoded(path: Path, h: int, w: int, c: int) -> np.ndarray:
    """A file → uint8 [1, h, w, c], as the model card tells a client to do it."""
    mode = "L" if c == 1 else "RGB"
    with Image.open(path) as im:
        im.draft(mode, (w, h))
        im = im.convert(mode).resize((w, h), Image.BILINEAR)
        return np.asarray(im, dtype="uint8").reshape(1, h, w, c)


def train_and_export(base: Path, name: str, data, net: str) -> Path:
    from cnnbp import cli
    assert cli.main(["train", "-e", net, "--data", str(data), "--epochs", "1", "--quiet",
                     "-o", str(base / "runs" / name)]) == 0
    assert cli.main(["export", str(base / "runs" / name), "-o", str(base / "bundles" / name),
                     "--no-variants"]) == 0
    return base / "bundles" / name


@pytest.fixture(scope="module")
def made(tmp_path_factory, keras):
    """kind → (bundle, [(file a user has, the array a client feeds pixels.onnx)])."""
    base = tmp_path_factory.mktemp("engines")
    out = {}
    # an image folder: RGB PNG and JPEG photos of sizes other than the net's
    folder, files = base / "photos", []
    for split, count in (("train", 6), ("test", 2)):
        for k, label in enumerate(sorted(NAMES)):
            (folder / split / label).mkdir(parents=True)
            for i in range(count):
                size = (14 + 3 * i, 20 + 5 * k)
                pixels = (RNG.random((*size, 3)) * 120 + 50 * k).astype("uint8")
                fmt = "JPEG" if i % 2 else "PNG"
                path = folder / split / label / f"{i}.{fmt.lower()}"
                path.write_bytes(encoded(pixels, fmt))
                files.append(path) if split == "test" else None
    bundle = train_and_export(base, "folder", folder, RGB)
    out["folder"] = (bundle, [(f, decoded(f, 8, 8, 3)) for f in files])
    # a uint8 .npz of 0..255 pixels: a user's rows, saved as PNG files for `cnnbp predict`
    x = RNG.integers(0, 256, (60, 8, 8), dtype="uint8")
    y = (x.reshape(60, -1).mean(axis=1) > 127).astype("int64") + (x[:, 0, 0] > 200)
    np.savez(base / "u8.npz", x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:])
    bundle = train_and_export(base, "npz", base / "u8.npz", GRAY)
    out["npz"] = (bundle, [(_png(base / f"npz{i}.png", row), row[None, :, :, None])
                           for i, row in enumerate(x[48:52])])
    # float images in [0, 1] (raw_max 1): raw values are float32, a PNG holds pixels = raw * 255
    xf = np.rint(RNG.random((60, 8, 8, 3)) * 255) / 255
    yf = (xf[..., 0].mean(axis=(1, 2)) > xf[..., 2].mean(axis=(1, 2))).astype("int64") + \
        (xf[:, 0, 0, 1] > 0.8)
    np.savez(base / "f01.npz", x_train=xf[:48].astype("float32"), y_train=yf[:48],
             x_test=xf[48:].astype("float32"), y_test=yf[48:])
    bundle = train_and_export(base, "floats", base / "f01.npz", RGB)
    out["floats"] = (bundle, [(_png(base / f"f{i}.png", np.rint(row * 255).astype("uint8")),
                               row[None].astype("float32")) for i, row in enumerate(xf[48:52])])
    # digits: the gray levels 0..16 themselves, the raw values pixels.onnx takes
    from sklearn.datasets import load_digits
    bundle = train_and_export(base, "digits", "digits", GRAY.replace("FC(3)", "FC(10)"))
    levels = load_digits().images[:4].astype("uint8")
    digits = []
    for i, row in enumerate(levels):
        np.save(base / f"digit{i}.npy", row)
        digits.append((base / f"digit{i}.npy", row[None, :, :, None]))
    out["digits"] = (bundle, digits)
    # 1-D signals, mnist1d-like: shifted, scaled templates with noise, float32 raw values
    t = np.linspace(0, 1, 40)
    templates = np.stack([np.sin(6 * t), np.sign(t - 0.5), np.exp(-((t - 0.3) / 0.1) ** 2)])
    labels = RNG.integers(0, 3, 90)
    s = (templates[labels] * RNG.uniform(0.5, 2, (90, 1)) + RNG.normal(0, 0.3, (90, 40)) + 3)
    s = s.astype("float32")
    np.savez(base / "signals.npz", x_train=s[:72], y_train=labels[:72], x_test=s[72:],
             y_test=labels[72:], class_names=np.array(NAMES))
    bundle = train_and_export(base, "signal", base / "signals.npz", SIGNAL)
    sig = []
    for i, row in enumerate(s[72:76]):
        np.save(base / f"signal{i}.npy", row)
        sig.append((base / f"signal{i}.npy", row[None, :, None]))
    out["signal"] = (bundle, sig)
    from tests.serve.conftest import Server
    server = Server(base / "bundles")
    yield out, server
    server.stop()


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.write_bytes(encoded(pixels, "PNG"))
    return path


def predicted(bundle: Path, path: Path, raw: np.ndarray) -> np.ndarray:
    """`cnnbp predict BUNDLE FILE` (local), every class, as a vector in labels.txt order. Raw
    values no file `cnnbp predict` reads can carry (digits' levels; a PNG holds 8-bit pixels)
    take predict's path from the raw array on: the bundle's model.onnx, loaded as predict
    loads it, on ``Preprocessing.apply`` of them."""
    from cnnbp.serve.client import predict_local
    if path.suffix == ".npy" and raw.ndim == 4:
        from cnnbp.serve import repository
        (model,) = repository.load(str(bundle)).values()
        return model.run(model.prep.apply(raw))[0]
    result = predict_local(str(bundle), [str(path)], top_k=100)[0]
    labels = (bundle / "labels.txt").read_text(encoding="utf-8").splitlines()
    got = np.full(len(labels), np.nan, "float32")
    for t in result["top_k"]:
        assert labels[t["index"]] == t["label"]
        got[t["index"]] = t["probability"]
    return got


@pytest.mark.parametrize("kind", ["folder", "npz", "floats", "digits", "signal"])
def test_predict_onnxruntime_and_openvino_agree_on_raw_input(made, kind):
    import onnxruntime as ort
    import openvino as ov
    bundle, samples = made[0][kind]
    model = str(bundle / "pixels.onnx")
    ort_session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (ort_input,) = ort_session.get_inputs()
    assert ort_input.type == ("tensor(float)" if kind in FLOAT else "tensor(uint8)")
    # OpenVINO may compute in bf16 on CPUs that have it unless asked for float32
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for path, raw in samples:
        reference = predicted(bundle, path, raw)
        probs, index = ort_session.run(None, {"pixels": raw})
        np.testing.assert_allclose(probs[0], reference, atol=1e-5, err_msg=f"{kind} {path.name}")
        assert index[0, 0] == reference.argmax() == probs[0].argmax()
        answer = compiled({"pixels": raw})
        ov_probs = answer[compiled.output("probabilities")]
        np.testing.assert_allclose(ov_probs[0], reference, atol=1e-4, err_msg=f"{kind} OpenVINO")
        assert answer[compiled.output("label_index")][0, 0] == reference.argmax()


@pytest.mark.parametrize("kind", ["folder", "npz", "floats", "digits", "signal"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tritonclient_sends_raw_pixels_to_cnnbp_serve(made, kind, protocol):
    if protocol == "http":
        import tritonclient.http as client_lib
    else:
        import tritonclient.grpc as client_lib
    (bundles, server) = made
    bundle, samples = bundles[kind]
    labels = (bundle / "labels.txt").read_text(encoding="utf-8").splitlines()
    client = client_lib.InferenceServerClient(
        server.url.removeprefix("http://") if protocol == "http" else server.grpc_target)
    for path, raw in samples:
        reference = predicted(bundle, path, raw)
        inp = client_lib.InferInput("pixels", list(raw.shape),
                                    "FP32" if kind in FLOAT else "UINT8")
        inp.set_data_from_numpy(raw)
        result = client.infer(kind, [inp], outputs=[client_lib.InferRequestedOutput(
            "probabilities")])
        np.testing.assert_allclose(result.as_numpy("probabilities")[0], reference, atol=1e-5,
                                   err_msg=f"{kind} {protocol} {path.name}")
        top = client.infer(kind, [inp], outputs=[client_lib.InferRequestedOutput(
            "probabilities", class_count=1)]).as_numpy("probabilities")
        score, index, label = top.reshape(-1)[0].decode().split(":", 2)
        assert int(index) == reference.argmax() and label == labels[reference.argmax()]
    client.close()
