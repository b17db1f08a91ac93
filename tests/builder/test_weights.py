"""Weights from a user's file: Keras 3 ``.weights.h5``, ``.keras``, legacy ``.h5`` and a
PyTorch-style ``.onnx`` (OIHW kernels, Gemm ``[out, in]``, a channels-first flatten) loaded
into a blueprint's net. The reference outputs come from the source model itself (Keras, or
ONNX Runtime on the ONNX graph), never from the loader."""
from __future__ import annotations

import numpy as np
import pytest

from cnnbp.builder import load, load_expression
from cnnbp.builder.weights import load_into
from cnnbp.builder.weights_normalize import fixed_normalization
from cnnbp.builder.weights_read import read
from cnnbp.builder.weights_source import with_source
from cnnbp.commands import build
from cnnbp.commands.assemble import parse, parser
from cnnbp.contract.errors import ArtifactError

NET = "INPUT(8x8x3)-CONV(4,3x3,pad=1)-RELU-POOL-CONV(6,3x3,pad=1)-RELU-FC(7)-RELU-FC(5)-SOFTMAX"


def _build(keras, pattern=NET, seed=0, extra=()):
    from cnnbp.builder.keras_builder import build_model
    compiled = load_expression(pattern, [f"weights.seed={seed}", *extra])
    return compiled, build_model(compiled.network)


def _x(model, n=4):
    return np.random.default_rng(1).random((n, *model.input_shape[1:]), dtype="float32")


def _differs(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".h5"])
def test_keras_files_give_the_source_outputs(keras, tmp_path, suffix):
    _, src = _build(keras, seed=1)
    path = str(tmp_path / f"src{suffix}")
    src.save_weights(path) if suffix == ".weights.h5" else src.save(path)
    compiled, ours = _build(keras, seed=2)
    x = _x(ours)
    assert _differs(ours(x), src(x)) > 1e-3  # a different start, so the load is what agrees
    loaded = load_into(ours, with_source(compiled, None, path))
    assert (loaded.layers, loaded.reinitialised) == (4, ())
    assert _differs(ours(x), src(x)) <= 1e-6


def torch_like_onnx(src, path, bias_add: bool = False):
    """The ONNX graph ``torch.onnx.export`` writes for the plain CNN ``src``: NCHW input,
    OIHW kernels, a C,H,W flatten and Gemm weights [out, in] with transB=1. ``bias_add``: each
    Conv's bias a separate ``Add`` of a 1xCx1x1 constant, as tf2onnx and edited graphs have it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits, nodes, x, flat = [], [], "input", None

    def add(op, *inputs, **attrs):
        nonlocal x
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, [x, *inputs], [out], **attrs))
        x = out

    def activation(ly):
        fn = getattr(getattr(ly, "activation", None), "__name__", "linear")
        if fn in ("relu", "softmax"):
            add(fn.capitalize(), **({"axis": 1} if fn == "softmax" else {}))

    for i, ly in enumerate(src.layers):
        kind = type(ly).__name__
        if kind == "Conv2D":
            k, b = ly.get_weights()
            pad = (k.shape[0] // 2 if ly.padding == "same" else 0,) * 4
            inits += [numpy_helper.from_array(k.transpose(3, 2, 0, 1).copy(), f"w{i}"),
                      numpy_helper.from_array(b.reshape(1, -1, 1, 1) if bias_add else b,
                                              f"b{i}")]
            if bias_add:
                add("Conv", f"w{i}", pads=list(pad), kernel_shape=list(k.shape[:2]))
                add("Add", f"b{i}")
            else:
                add("Conv", f"w{i}", f"b{i}", pads=list(pad), kernel_shape=list(k.shape[:2]))
            activation(ly)
        elif kind == "Activation":
            activation(ly)
        elif kind == "MaxPooling2D":
            add("MaxPool", kernel_shape=list(ly.pool_size), strides=list(ly.strides))
        elif kind == "Flatten":
            flat = tuple(ly.input.shape[1:])
            add("Flatten", axis=1)
        elif kind == "Dense":
            k, b = ly.get_weights()
            if flat:  # rows in H,W,C order → C,H,W order, as PyTorch flattens
                k = k.reshape(*flat, -1).transpose(2, 0, 1, 3).reshape(k.shape)
                flat = None
            inits += [numpy_helper.from_array(k.T.copy(), f"w{i}"),
                      numpy_helper.from_array(b, f"b{i}")]
            add("Gemm", f"w{i}", f"b{i}", transB=1)
            activation(ly)
    nodes[-1].output[0] = "output"
    h, w, c = src.input_shape[1:]
    graph = helper.make_graph(
        nodes, "torch_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, c, h, w])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _onnx_outputs(path, x):
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.transpose(0, 3, 1, 2)})[0]


def test_a_pytorch_style_onnx_gives_onnx_runtimes_outputs(keras, tmp_path):
    _, src = _build(keras, seed=1)
    path = tmp_path / "torch.onnx"
    torch_like_onnx(src, path)
    compiled, ours = _build(keras, seed=2)
    x = _x(ours)
    expected = _onnx_outputs(path, x)  # ONNX Runtime on the NCHW graph, not our loader
    assert _differs(ours(x), expected) > 1e-3
    load_into(ours, with_source(compiled, None, str(path)))
    assert _differs(ours(x), expected) <= 1e-5
    kinds = [(s.kind, s.arrays[0].shape) for s in read(path)]
    assert kinds == [("CONV", (3, 3, 3, 4)), ("CONV", (3, 3, 4, 6)), ("FC", (96, 7)),
                     ("FC", (7, 5))]


def test_an_onnx_export_of_a_keras_net_keeps_its_channels_last_flatten(keras, tmp_path):
    import onnx

    from cnnbp.export.onnx_export import to_onnx
    _, src = _build(keras, seed=1)
    path = tmp_path / "keras.onnx"  # tf2onnx: Transposes around NCHW convs, an NHWC flatten
    onnx.save(to_onnx(src), str(path))
    compiled, ours = _build(keras, seed=2)
    load_into(ours, with_source(compiled, None, str(path)))
    x = _x(ours)
    assert _differs(ours(x), src(x)) <= 1e-6


def test_bgr_flips_the_first_convolutions_input_channels(keras, tmp_path):
    _, src = _build(keras, seed=1)
    path = str(tmp_path / "src.weights.h5")
    src.save_weights(path)
    compiled, ours = _build(keras, seed=2, extra=["weights.channel_order=bgr"])
    load_into(ours, with_source(compiled, None, path))
    x = _x(ours)
    assert _differs(ours(x), src(x[..., ::-1])) <= 1e-6  # we take RGB where it took BGR
    assert _differs(ours(x), src(x)) > 1e-4


def test_a_classifier_with_other_classes_is_reinitialised_and_said(keras, tmp_path):
    _, src = _build(keras, seed=1)
    path = str(tmp_path / "src.weights.h5")
    src.save_weights(path)
    compiled, ours = _build(keras, NET.replace("FC(5)", "FC(3)"), seed=2)
    fresh = ours.layers[-1].get_weights()
    said = []
    loaded = load_into(ours, with_source(compiled, None, path), say=said.append)
    name = ours.layers[-1].name
    assert loaded.reinitialised == (name,) and len(said) == 1
    assert name in said[0] and "3 classes" in said[0] and "5" in said[0]
    for a, b in zip(ours.layers[-1].get_weights(), fresh):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ours.layers[1].get_weights(), src.layers[1].get_weights()):  # first CONV
        np.testing.assert_array_equal(a, b)


def test_a_feature_extractors_file_leaves_the_fc_layers_fresh(keras, tmp_path):
    _, src = _build(keras, seed=1)
    L = keras.layers  # what include_top=False keeps: the convolutions only
    notop = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same"),
                              L.MaxPooling2D(), L.Conv2D(6, 3, padding="same")])
    convs = [ly for ly in src.layers if type(ly).__name__ == "Conv2D"]
    for mine, theirs in zip([ly for ly in notop.layers if type(ly).__name__ == "Conv2D"], convs):
        mine.set_weights(theirs.get_weights())
    path = str(tmp_path / "notop.weights.h5")
    notop.save_weights(path)
    compiled, ours = _build(keras, seed=2)
    fcs = [ly for ly in ours.layers if type(ly).__name__ == "Dense"]
    fresh = [w.copy() for ly in fcs for w in ly.get_weights()]
    said = []
    loaded = load_into(ours, with_source(compiled, None, path), say=said.append)
    assert loaded.layers == 2 and loaded.reinitialised == tuple(ly.name for ly in fcs)
    assert "no FC layers" in said[0]
    for a, b in zip([w for ly in fcs for w in ly.get_weights()], fresh):
        np.testing.assert_array_equal(a, b)
    for a, b in zip([ly for ly in ours.layers if type(ly).__name__ == "Conv2D"], convs):
        np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])


def test_keras_2s_root_level_h5_as_keras_applications_downloads_it(keras, tmp_path):
    import h5py
    _, src = _build(keras, seed=1)
    full = str(tmp_path / "full.h5")
    src.save(full)  # the legacy layout, under model_weights/
    path = str(tmp_path / "keras2.h5")  # Keras 2's save_weights: the same groups at the root
    with h5py.File(full, "r") as f, h5py.File(path, "w") as out:
        groups = f["model_weights"]
        for name in groups.attrs["layer_names"]:
            f.copy(groups[name], out, name)
        out.attrs["layer_names"] = groups.attrs["layer_names"]
    compiled, ours = _build(keras, seed=2)
    load_into(ours, with_source(compiled, None, path))
    x = _x(ours)
    assert _differs(ours(x), src(x)) <= 1e-6


def test_a_different_layer_count_names_the_first_without_a_partner(keras, tmp_path):
    _, src = _build(keras, seed=1)
    path = str(tmp_path / "src.weights.h5")
    src.save_weights(path)
    extra = NET.replace("RELU-FC(7)", "RELU-CONV(6,3x3,pad=1)-RELU-FC(7)")
    out = tmp_path / "m.keras"
    args = parse(parser(), ["build", "-e", extra, "--weights", path, "-o", str(out)])
    with pytest.raises(ArtifactError) as caught:
        build.run(args)
    message = str(caught.value)
    assert "this net has 3 CONV layers with weights and the file 2" in message
    assert "our stage2_conv2 is the first CONV layer without a partner" in message
    assert not out.exists()  # nothing written when the weights do not fit


def test_a_mismatch_names_both_layers_and_shapes_and_changes_nothing(keras, tmp_path):
    _, src = _build(keras, seed=1)
    path = str(tmp_path / "src.weights.h5")
    src.save_weights(path)
    other = NET.replace("CONV(6,", "CONV(8,")
    compiled, ours = _build(keras, other, seed=2)
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ArtifactError) as caught:
        load_into(ours, with_source(compiled, None, path))
    message = str(caught.value)
    conv2 = [ly for ly in ours.layers if type(ly).__name__ == "Conv2D"][1].name
    assert f"our CONV layer {conv2} has weights 3x3x4x8, 8" in message
    assert "3x3x4x6, 6" in message and f"{conv2} is the first layer that failed" in message
    assert "\n" not in message
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_missing_or_unknown_file_is_refused_naming_it(tmp_path):
    compiled = load_expression(NET)
    with pytest.raises(ArtifactError, match=r"names no file here \(--weights is relative to "
                       "the working folder"):
        with_source(compiled, None, str(tmp_path / "none.weights.h5"))
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"\.keras, \.weights\.h5, \.h5, \.onnx"):
        with_source(compiled, None, str(tmp_path / "w.pt"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ArtifactError, match="cannot read weights"):
        read(bad)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf \xff\xfe")
    with pytest.raises(ArtifactError, match="garbage.onnx: is not a readable ONNX model"):
        read(garbage)
    for parses_empty in (b"", b"x\n"):  # protobuf reads these as an empty model, no error
        text = tmp_path / "text.onnx"
        text.write_bytes(parses_empty)
        with pytest.raises(ArtifactError, match="text.onnx: is not a readable ONNX model: it "
                                                "holds no graph"):
            read(text)
        from cnnbp.builder.importer import read_model
        with pytest.raises(ArtifactError, match="holds no graph"):
            read_model(text)


def test_check_refuses_weights_keys_the_input_cannot_take_at_their_line(tmp_path, capsys):
    """Channel counts are checked where the blueprint compiles (file and line), and the file
    weights.from names must be there (check does not read it)."""
    from cnnbp import cli
    net = "INPUT(8x8x1)-CONV(4,3x3)-RELU-FC(5)-SOFTMAX"
    bp = tmp_path / "net.yaml"
    bp.write_text(f'name: n\npattern: "{net}"\nweights:\n  from: w.weights.h5\n'
                  "  channel_order: bgr\n  normalize: {mean: [1, 2, 3], std: [1]}\n")
    assert cli.main(["check", str(bp)]) == 2
    err = capsys.readouterr().err
    assert f"{bp}:5:" in err and "weights.channel_order: is bgr, but the net's input has 1 " \
        "channels" in err
    assert f"{bp}:6:" in err and "weights.normalize.mean: has 3 values but the net's input " \
        "has 1 channels" in err and "normalize.std" not in err
    bp.write_text(f'name: n\npattern: "{net}"\nweights: {{from: w.weights.h5}}\n')
    assert cli.main(["check", str(bp)]) == 2
    assert f"weights.from names no file here (a blueprint's weights.from is relative to the " \
        f"blueprint's folder, {tmp_path})" in capsys.readouterr().err
    (tmp_path / "w.weights.h5").write_bytes(b"")  # there, and not read by check
    assert cli.main(["check", str(bp)]) == 0


def test_build_refuses_an_unreadable_onnx_cleanly(tmp_path, capsys):
    from cnnbp import cli
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf \xff\xfe")
    code = cli.main(["build", "-e", NET, "--weights", str(tmp_path / "garbage.onnx"),
                     "-o", str(tmp_path / "x.keras")])
    err = capsys.readouterr().err
    assert code == 2 and "is not a readable ONNX model" in err and "internal error" not in err
    assert not (tmp_path / "x.keras").exists()


def test_build_takes_weights_from_the_flag_and_from_the_blueprint(keras, tmp_path, capsys,
                                                                   monkeypatch):
    _, src = _build(keras, seed=1)
    (tmp_path / "w").mkdir()
    src.save_weights(str(tmp_path / "w" / "src.weights.h5"))
    blueprint = tmp_path / "w" / "net.yaml"  # weights.from relative to the blueprint file
    blueprint.write_text(f"name: net\npattern: \"{NET}\"\nweights: {{seed: 2, from: "
                         "src.weights.h5}\n")
    monkeypatch.chdir(tmp_path)
    x = _x(src)
    for argv in (["build", str(blueprint), "-o", "a.keras"],
                 ["build", "-e", NET, "--weights", "w/src.weights.h5", "-o", "b.keras"]):
        args = parse(parser(), argv)
        assert build.run(args) == 0
        out = tmp_path / argv[-1]
        assert f"weights from {tmp_path / 'w' / 'src.weights.h5'}" in capsys.readouterr().out
        assert _differs(keras.saving.load_model(out)(x), src(x)) <= 1e-6
    # the resolved blueprint keeps a path that works from anywhere
    resolved = with_source(load(str(blueprint)), str(blueprint)).resolved
    assert resolved["weights"]["from"] == str(tmp_path / "w" / "src.weights.h5")


def _vgg(keras, name, tmp_path, suffix=".weights.h5"):
    """``keras.applications``' VGG (untrained: nothing downloads) and its weights file."""
    app = getattr(keras.applications, name.upper())(weights=None)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".onnx":
        torch_like_onnx(app, path)
    else:
        app.save_weights(str(path))
    return app, str(path)


def _features(keras, model, x):
    """The net's input to its classifier (the last FC's input): a stronger check than the
    softmax, whose outputs from untrained weights are all near 1/classes."""
    return np.asarray(keras.Model(model.input, model.layers[-1].input)(x))


@pytest.mark.slow
@pytest.mark.parametrize("name,suffix", [("vgg16", ".weights.h5"), ("vgg19", ".weights.h5"),
                                         ("vgg16", ".onnx")])
def test_keras_applications_vgg_into_the_shipped_blueprint(keras, tmp_path, name, suffix):
    from cnnbp.builder.keras_builder import build_model
    app, path = _vgg(keras, name, tmp_path, suffix)
    compiled = with_source(load(name), None, path)
    ours = build_model(compiled.network)
    x = np.random.default_rng(2).random((1, 224, 224, 3), dtype="float32")
    features = _features(keras, app, x)
    assert _differs(ours.layers[1].get_weights()[0], app.layers[1].get_weights()[0]) > 1e-3
    loaded = load_into(ours, compiled)
    assert loaded.layers == (16 if name == "vgg16" else 19) and loaded.reinitialised == ()
    assert _differs(ours(x), app(x)) <= 1e-5
    assert _differs(_features(keras, ours, x), features) <= 1e-5 * max(1, np.abs(features).max())


@pytest.mark.slow
def test_vgg16_with_10_classes_keeps_the_convolutions(keras, tmp_path):
    from cnnbp.builder.keras_builder import build_model
    app, path = _vgg(keras, "vgg16", tmp_path)
    compiled = with_source(load("vgg16", ["classes=10"]), None, path)
    ours = build_model(compiled.network)
    fresh = ours.layers[-1].get_weights()
    said = []
    loaded = load_into(ours, compiled, say=said.append)
    assert loaded.reinitialised == (ours.layers[-1].name,) and "10 classes" in said[0]
    convs = [ly for ly in ours.layers if type(ly).__name__ == "Conv2D"]
    app_convs = [ly for ly in app.layers if type(ly).__name__ == "Conv2D"]
    assert len(convs) == len(app_convs) == 13
    for a, b in zip(convs, app_convs):
        for u, v in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(u, v)
    for u, v in zip(ours.layers[-1].get_weights(), fresh):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("raw_max,scale", [(255.0, 255.0), (16.0, 16.0), (1.0, 1.0)])
def test_normalize_is_the_sources_formula_in_pixels(raw_max, scale):
    from cnnbp.contract.preprocessing import Preprocessing
    fitted = Preprocessing(input_shape=[4, 4, 3], domain="image", raw_max=raw_max, scale=scale,
                           mean=[0.5] * 3, std=[0.2] * 3, class_names=["a", "b"])
    caffe = {"weights": {"normalize": {"mean": [123.68, 116.779, 103.939], "std": [1, 2, 4]}}}
    prep, note = fixed_normalization(fitted, "fitted", caffe)
    assert "weights.normalize" in note
    pixels = np.random.default_rng(3).integers(0, 256, (2, 4, 4, 3)).astype("float32")
    expected = (pixels - np.float32([123.68, 116.779, 103.939])) / np.float32([1, 2, 4])
    # the record's own path from pixels, as serving and pixels.onnx take it
    np.testing.assert_allclose(prep.apply(prep.raw_from_pixels(pixels)), expected, atol=2e-4)
    assert fixed_normalization(fitted, "fitted", {"weights": {}}) == (fitted, "fitted")


def test_normalize_refuses_a_count_that_is_not_the_channels_and_non_images():
    from cnnbp.builder.errors import BlueprintError
    from cnnbp.contract.preprocessing import Preprocessing
    gray = Preprocessing(input_shape=[4, 4, 1], domain="image", raw_max=255.0, scale=255.0,
                         mean=[0.5], std=[0.2], class_names=["a", "b"])
    with pytest.raises(BlueprintError, match=r"weights\.normalize\.mean.*3 values.*1 channels"):
        fixed_normalization(gray, "", {"weights": {"normalize": {"mean": [1, 2, 3], "std": [1]}}})
    signal = Preprocessing(input_shape=[40, 1], domain="signal", mean=[0.0], std=[1.0],
                           class_names=["a", "b"])
    with pytest.raises(BlueprintError, match=r"weights\.normalize.*no image \(signal\)"):
        fixed_normalization(signal, "", {"weights": {"normalize": {"mean": [1], "std": [1]}}})
