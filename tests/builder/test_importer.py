"""``cnnbp import``: a .keras or .onnx classifier back to its blueprint.

Every shipped blueprint goes build → .keras → import → ``cnnbp check``, and must give the
analysis the shipped blueprint gives; with the weights (``weights.from``, loaded by
``cnnbp build``), the same outputs. A hand-written Keras LeNet-5 and the ONNX export of AlexNet
come back as their blueprints; a model outside the grammar is refused naming the layer.
"""
from __future__ import annotations

import doctest
import importlib
import json
import zipfile

import numpy as np
import pytest

from cnnbp import cli
from cnnbp.builder import build_model, fold, import_keras, import_onnx, imported, ir, load, written
from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.importer import blueprint_for
from cnnbp.contract.errors import ArtifactError, UsageError
from tests.conftest import SHIPPED, SMALL

# ``import`` is a keyword: the command's module is reached by name
import_command = importlib.import_module("cnnbp.commands.import")

# Folded as the shipped file writes them: the same pattern and vars (vgg13 too, but its file
# writes N: [2, 2, 2, 2, 2] where the import writes N: 2).
FOLDED = {"vgg11", "vgg11_lrn", "vgg16", "vgg19", "cifar10_small", "digits"}


def _check_json(capsys, ref: str) -> dict:
    capsys.readouterr()
    assert cli.main(["check", ref, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _config_only(model, path) -> None:
    """A .keras file without weights: Keras's own config.json of the model, all that the
    structure needs (saving VGG-16's 528 MB of weights would take most of a test's time)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", model.to_json())


def _import(capsys, model_path, out) -> str:
    assert cli.main(["import", str(model_path), "-o", str(out)]) == 0
    return capsys.readouterr().out


def _expected(name: str) -> dict:
    """The shipped blueprint's analysis. A window written `padding: same` at stride 1 leaves
    no trace in Keras of how it was written: it comes back as the pads `same` adds there,
    (kernel - 1) / 2 a side (cifar10_small, digits, mnist1d)."""
    compiled = load(name)
    expected = compiled.analysis.to_json()
    for row, layer in zip(expected["layers"], compiled.network.layers):
        if getattr(layer, "padding", None) == "same" and set(layer.stride) == {1} and \
                len(set(layer.kernel)) == 1 and layer.kernel[0] % 2:
            row["description"] = row["description"].replace(
                "pad same", f"pad {(layer.kernel[0] - 1) // 2}")
    return expected


@pytest.mark.parametrize("name", [n if n in SMALL else pytest.param(n, marks=pytest.mark.slow)
                                  for n in SHIPPED])
def test_every_shipped_blueprint_comes_back_with_the_same_analysis(name, tmp_path, capsys,
                                                                   keras):
    model = build_model(load(name).network)
    src = tmp_path / f"{name}.keras"
    model.save(src) if name in SMALL else _config_only(model, src)
    out = tmp_path / "imported" / "bp.yaml"
    out.parent.mkdir()
    said = _import(capsys, src, out)
    assert said.startswith(f"{name}: wrote {out}")
    assert _check_json(capsys, str(out)) == _expected(name)
    doc = blueprint_for(src, out)
    assert doc["weights"] == {"from": f"../{name}.keras"}
    if name in FOLDED:
        shipped = load(name).resolved
        assert (doc["pattern"], doc["vars"]) == (shipped["pattern"], shipped["vars"])
    if name == "vgg16_c":  # the file's C is EXTRA here, its padding=0 is pad=valid
        assert doc["pattern"] == ("[(CONV-RELU)*N-(CONV(kernel=1, pad=valid)-RELU)?EXTRA-POOL]*M-"
                                  "(FC-RELU-DROPOUT)*K-SOFTMAX")
        assert doc["vars"]["EXTRA"] == [False, False, True, True, True]


def test_vgg16_folds_as_the_paper_writes_it(tmp_path, keras):
    """The shipped file's own form: per-stage filters and counts, pad 1, without TensorFlow
    building 138M weights (the config of a 1-class, 32x32 VGG-16 has the same structure)."""
    net = load("vgg16", ["input=[32, 32, 3]", "K=0", "classes=2"]).network
    src = tmp_path / "vgg16.keras"
    _config_only(build_model(net), src)
    doc = blueprint_for(src, tmp_path / "bp.yaml")
    assert doc["pattern"] == "[(CONV-RELU)*N-POOL]*M-SOFTMAX"
    assert doc["vars"] == {"M": 5, "N": [2, 2, 3, 3, 3]}
    assert doc["layers"] == {"CONV": {"filters": [64, 128, 256, 512, 512], "kernel": 3,
                                      "padding": 1},
                             "POOL": {"size": 2}}


def _outputs_agree(keras, original, rebuilt_path, shape) -> float:
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype("float32")
    rebuilt = keras.saving.load_model(rebuilt_path)
    return float(np.max(np.abs(original.predict(x, verbose=0) - rebuilt.predict(x, verbose=0))))


@pytest.mark.parametrize("name", SMALL)
def test_with_its_weights_the_imported_blueprint_gives_the_same_outputs(name, tmp_path,
                                                                        capsys, keras):
    net = load(name).network
    model = build_model(net)
    # not the seeded initial weights the blueprint would build anyway (BN variances stay > 0)
    rng = np.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.1
                       for w in model.get_weights()])
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    model.save(tmp_path / "m.keras")
    _import(capsys, tmp_path / "m.keras", tmp_path / "bp.yaml")
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    assert "weights from" in capsys.readouterr().out
    assert _outputs_agree(keras, model, tmp_path / "r.keras", net.input_shape) <= 1e-5


# ZFNet's and AlexNet's parts at a size that saves in a moment: a floored strided window with
# pads (EdgePad + Conv), ceil pooling (EdgePad with -inf), LRN, grouped convolutions
ODD_PARTS = ("INPUT(36x36x3)-CONV(8, 7, stride=2, pad=1, rounding=floor)-RELU-"
             "POOL(3, 2, rounding=ceil)-LRN-CONV(16, 3, pad=1, groups=2)-RELU-POOL(2)-"
             "FC(32)-RELU-DROPOUT(0.5)-FC(10)-SOFTMAX")


def test_the_odd_parts_come_back_with_their_weights(tmp_path, capsys, keras):
    from cnnbp.builder import load_expression
    compiled = load_expression(ODD_PARTS)
    model = build_model(compiled.network)
    model.save(tmp_path / "m.keras")
    _import(capsys, tmp_path / "m.keras", tmp_path / "bp.yaml")
    assert _check_json(capsys, str(tmp_path / "bp.yaml")) == compiled.analysis.to_json()
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    assert _outputs_agree(keras, model, tmp_path / "r.keras", (36, 36, 3)) <= 1e-5


@pytest.mark.slow
def test_a_shipped_alexnet_comes_back_with_its_62m_weights(tmp_path, capsys, keras):
    """At full size: grouped convolutions, LRN and 4096-wide FCs, weights through
    weights.from and cnnbp build."""
    net = load("alexnet_grouped").network
    model = build_model(net)
    model.save(tmp_path / "m.keras")
    _import(capsys, tmp_path / "m.keras", tmp_path / "bp.yaml")
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    x = np.random.default_rng(0).standard_normal((2, 227, 227, 3)).astype("float32")
    rebuilt = keras.saving.load_model(tmp_path / "r.keras")
    diff = np.abs(np.asarray(model(x, training=False)) - np.asarray(rebuilt(x, training=False)))
    assert float(diff.max()) <= 1e-5


def _lenet(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 1)),
        L.Conv2D(6, 5, activation="tanh"), L.AveragePooling2D(2),
        L.Conv2D(16, 5, activation="tanh"), L.AveragePooling2D(2),
        L.Conv2D(120, 5, activation="tanh"), L.Flatten(),
        L.Dense(84, activation="tanh"), L.Dense(10, activation="softmax")])


def test_a_hand_written_keras_lenet5_comes_back_as_the_shipped_blueprint(tmp_path, capsys,
                                                                          keras):
    model = _lenet(keras)
    model.save(tmp_path / "lenet.keras")
    read = import_keras.read(tmp_path / "lenet.keras")
    assert [la.kind if la.kind != "ACTIVATION" else la.fn for la in read.layers] == [
        "CONV", "TANH", "POOL", "CONV", "TANH", "POOL", "CONV", "TANH", "FLATTEN", "FC",
        "TANH", "FC"]
    assert (read.input_shape, read.classes, read.layers[-1].softmax) == ((32, 32, 1), 10, True)
    _import(capsys, tmp_path / "lenet.keras", tmp_path / "bp.yaml")
    got, want = _check_json(capsys, str(tmp_path / "bp.yaml")), _check_json(capsys, "lenet5")
    assert got.pop("name") == model.name and want.pop("name") == "lenet5"
    assert got == want
    text = (tmp_path / "bp.yaml").read_text()
    assert 'pattern: "[CONV-TANH-POOL?]*M-(FC-TANH)*K-SOFTMAX"' in text
    assert "vars: {M: 3, POOL: [true, true, false], K: 1}" in text
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    assert _outputs_agree(keras, model, tmp_path / "r.keras", (32, 32, 1)) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_keras_applications_vgg_folds_to_the_shipped_blueprint_without_dropout(name, tmp_path,
                                                                              keras):
    """keras.applications' VGG has no Dropout in its head; the rest is the shipped net."""
    import dataclasses
    app = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[name]
    _config_only(app(weights=None), tmp_path / "app.keras")
    doc = blueprint_for(tmp_path / "app.keras", tmp_path / "bp.yaml")
    shipped = load(name)
    assert doc["pattern"] == "[(CONV-RELU)*N-POOL]*M-(FC-RELU)*K-SOFTMAX"
    assert (doc["vars"], doc["layers"]["CONV"]) == (shipped.resolved["vars"], {
        "filters": [64, 128, 256, 512, 512], "kernel": 3, "padding": 1})
    from cnnbp.builder.importer import network_of
    plain = lambda layers: [dataclasses.replace(la, origin="") for la in layers
                            if not isinstance(la, ir.Dropout)]
    assert plain(network_of(doc).layers) == plain(shipped.network.layers)


HAND_WRITTEN = {
    "no pooling": lambda L: [L.Conv2D(4, 3, activation="relu"), L.Conv2D(8, 3, activation="relu"),
                             L.Flatten(), L.Dense(3, activation="softmax")],
    "BN and a global pool": lambda L: [
        L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
        L.GlobalAveragePooling2D(), L.Dense(5), L.Softmax()],
    "strided same": lambda L: [
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu"), L.Flatten(),
        L.Dropout(0.2), L.Dense(10, activation="softmax")],
}


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_hand_written_keras_nets_rebuild_to_the_same_model(name, tmp_path, keras):
    """Keras itself is the reference: the imported blueprint's model has the same weight
    shapes and, given the weights in order, the same outputs."""
    from cnnbp.builder.importer import network_of
    model = keras.Sequential([keras.Input((16, 16, 3)), *HAND_WRITTEN[name](keras.layers)])
    _config_only(model, tmp_path / "m.keras")
    rebuilt = build_model(network_of(blueprint_for(tmp_path / "m.keras")))
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in model.get_weights()]
    rebuilt.set_weights(model.get_weights())
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype("float32")
    diff = np.abs(np.asarray(model(x, training=False)) - np.asarray(rebuilt(x, training=False)))
    assert float(diff.max()) <= 1e-5


def _onnx(model, path) -> None:
    import onnx

    from cnnbp.export.onnx_export import to_onnx
    onnx.save(to_onnx(model), str(path))


def test_an_onnx_export_comes_back_with_its_weights(tmp_path, capsys, keras):
    model = build_model(load("lenet5").network)
    _onnx(model, tmp_path / "lenet5.onnx")
    read = import_onnx.read(tmp_path / "lenet5.onnx")
    assert [la.name for la in read.layers][:3] == ["stage1_conv1", "stage1_tanh", "stage1_pool"]
    _import(capsys, tmp_path / "lenet5.onnx", tmp_path / "bp.yaml")
    assert _check_json(capsys, str(tmp_path / "bp.yaml")) == _expected("lenet5")
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    assert _outputs_agree(keras, model, tmp_path / "r.keras", (32, 32, 1)) <= 1e-5


@pytest.mark.parametrize("bias_add", [False, True])
def test_a_pytorch_style_onnx_comes_back_and_builds_to_onnx_runtimes_outputs(tmp_path, capsys,
                                                                            keras, bias_add):
    """NCHW input, OIHW kernels, Flatten and Gemm (transB=1), as torch.onnx.export writes;
    with ``bias_add`` each Conv's bias is an Add after it, which the import and the build's
    weights must both take."""
    import onnxruntime as ort

    from cnnbp.builder import load_expression
    from tests.builder.test_weights import NET, torch_like_onnx
    compiled = load_expression(NET)
    torch_like_onnx(build_model(compiled.network), tmp_path / "torch.onnx", bias_add)
    _import(capsys, tmp_path / "torch.onnx", tmp_path / "bp.yaml")
    got, want = _check_json(capsys, str(tmp_path / "bp.yaml")), compiled.analysis.to_json()
    assert (got.pop("name"), want.pop("name")) == ("torch_like", "expression") and got == want
    assert cli.main(["build", str(tmp_path / "bp.yaml"), "-o", str(tmp_path / "r.keras")]) == 0
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
    session = ort.InferenceSession(str(tmp_path / "torch.onnx"),
                                   providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x.transpose(0, 3, 1, 2)})[0]
    rebuilt = keras.saving.load_model(tmp_path / "r.keras").predict(x, verbose=0)
    assert float(np.max(np.abs(rebuilt - expected))) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "zfnet"])
def test_the_onnx_export_of_alexnet_comes_back_without_its_dropout(name, tmp_path, keras):
    """An inference graph holds no Dropout: the rest of the net comes back layer for layer
    (LRN from the subgraph tf2onnx makes of it, ceil rounding from ZFNet's pads)."""
    import dataclasses

    from cnnbp.builder import ir
    from cnnbp.builder.importer import network_of
    shipped = load(name).network
    _onnx(build_model(shipped), tmp_path / f"{name}.onnx")
    got = network_of(blueprint_for(tmp_path / f"{name}.onnx"))
    plain = lambda layers: [dataclasses.replace(la, origin="") for la in layers
                            if not isinstance(la, ir.Dropout)]
    assert plain(got.layers) == plain(shipped.layers)
    assert (got.name, got.input_shape, got.classes) == (name, shipped.input_shape, 1000)


def test_the_arithmetic_and_the_inline_text_are_as_documented():
    assert doctest.testmod(imported).failed == 0 and doctest.testmod(written).failed == 0
    conv = ir.Conv("c", 256, (5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 2, True, None)
    assert written.call(written.written(conv)) == "CONV(256, 5, pad=2, groups=2)"
    pool = ir.Pool("p", "max", (3, 3), (2, 2), "valid", "ceil")
    assert written.call(written.written(pool)) == "POOL(3, 2, rounding=ceil)"
    assert written.call(written.written(ir.LRN("n", 5, 1e-4, 0.75, 1.0))) == "LRN(bias=1.0)"


def test_a_layer_some_stages_lack_folds_to_an_optional_token():
    """Two stages of (CONV-RELU)*N, the second with an extra BN, and a 1-D input."""
    def unit(stage, i, filters, bn=False):
        conv = ir.Conv(f"c{stage}{i}", filters, (3,), (1,), ((1, 1),), (1,), 1, True, None)
        return [conv] + ([ir.BatchNorm(f"b{stage}{i}", 0.99, 1e-3)] if bn else []) + \
            [ir.Activation(f"r{stage}{i}", "RELU")]
    layers = unit(1, 1, 8) + [ir.Pool("p1", "max", (2,), (2,), "valid", None)] + \
        unit(2, 1, 16, True) + unit(2, 2, 16, True) + \
        [ir.Pool("p2", "max", (2,), (2,), "valid", None), ir.Flatten("f"),
         ir.Dense("d", 5, True, True)]
    net = imported.Imported("tiny", (16, 1), tuple(layers), "tiny.onnx", "ONNX")
    assert fold.fold(net, "tiny.onnx") == {
        "name": "tiny", "description": "imported from ONNX file tiny.onnx", "input": [16, 1],
        "classes": 5, "pattern": "[(CONV-BN?-RELU)*N-POOL]*M-SOFTMAX",
        "vars": {"M": 2, "BN": [False, True], "N": [1, 2]},
        "layers": {"CONV": {"filters": [8, 16], "kernel": 3, "padding": 1}, "POOL": {"size": 2}},
        "weights": {"from": "tiny.onnx"}}


# -- refusals --------------------------------------------------------------------------------

def test_a_branch_is_refused_naming_the_layer_that_joins_it(tmp_path, keras):
    L = keras.layers
    x = inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", name="first")(x)
    y = L.Conv2D(4, 3, padding="same", name="second")(x)
    x = L.Add(name="shortcut")([x, y])
    x = L.Dense(3, activation="softmax")(L.Flatten()(x))
    keras.Model(inputs, x).save(tmp_path / "res.keras")
    with pytest.raises(BlueprintError) as err:
        blueprint_for(tmp_path / "res.keras")
    assert str(err.value) == (
        f"{tmp_path / 'res.keras'}: layer 'shortcut' (Add): joins 2 branches (first, second); "
        "the pattern describes a single chain of layers, each taking the previous one's output")


@pytest.mark.parametrize("last, message", [
    ("Rescaling(2)", "layer 'logits' (Rescaling): is preprocessing; a blueprint's net starts "
                     "after it"),
    ("Dense(3)", "layer 'logits' (Dense): ends the net, but the pattern ends with its "
                 "classifier: a Dense layer with a softmax"),
    ("Conv2DTranspose(3, 3)", "layer 'logits' (Conv2DTranspose): has no token in the pattern "
                              "grammar; it knows Conv1D/Conv2D (CONV)"),
])
def test_a_layer_outside_the_grammar_is_named(last, message, tmp_path, keras):
    L = keras.layers
    cls, args = last.split("(")
    layer = getattr(L, cls)(*[int(a) for a in args.rstrip(")").split(", ")], name="logits")
    keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3), layer]).save(tmp_path / "m.keras")
    with pytest.raises(BlueprintError, match=message.replace("(", r"\(").replace(")", r"\)")):
        blueprint_for(tmp_path / "m.keras")


def test_a_batchnorm_the_onnx_exporter_folded_is_refused_with_the_reason(tmp_path, keras):
    _onnx(build_model(load("cifar10_small").network), tmp_path / "c.onnx")
    with pytest.raises(BlueprintError) as err:
        blueprint_for(tmp_path / "c.onnx")
    assert str(err.value).startswith(f"{tmp_path / 'c.onnx'}: layer 'stage1_bn1/batchnorm/mul_1' "
                                     "(Mul): has no token in the pattern grammar")
    assert str(err.value).endswith("a per-channel Mul/Add is how an exporter folds an "
                                   "inference-mode BatchNormalization, which the graph no longer "
                                   "tells apart: import the .keras file instead")


def test_a_value_beyond_the_blueprints_ranges_is_refused_naming_the_file(tmp_path, keras):
    L = keras.layers
    keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dropout(0.995),
                      L.Dense(3, activation="softmax")]).save(tmp_path / "m.keras")
    with pytest.raises(BlueprintError) as err:
        blueprint_for(tmp_path / "m.keras")
    assert str(err.value).startswith(f"{tmp_path / 'm.keras'}: ")
    assert "must be <= 0.99, got 0.995" in str(err.value)


def test_an_existing_blueprint_is_kept_unless_forced(tmp_path, capsys, keras):
    build_model(load("digits").network).save(tmp_path / "m.keras")
    out = tmp_path / "bp.yaml"
    out.write_text("mine\n")
    with pytest.raises(UsageError, match="already exists; add --force"):
        _run(["import", str(tmp_path / "m.keras"), "-o", str(out)])
    assert out.read_text() == "mine\n"
    _run(["import", str(tmp_path / "m.keras"), "-o", str(out), "--force"])
    assert out.read_text().startswith("name: digits\n")


def _run(argv: list[str]) -> int:
    from cnnbp.commands.assemble import parse, parser
    args = parse(parser(), argv)
    assert args.run is import_command.run
    return args.run(args)


def test_importing_a_keras_file_starts_no_tensorflow(tmp_path, keras):
    import subprocess
    import sys
    build_model(load("digits").network).save(tmp_path / "m.keras")
    code = ("import sys; from cnnbp.builder.importer import blueprint_for; "
            f"blueprint_for({str(tmp_path / 'm.keras')!r}); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout == "[]\n"


def test_a_file_that_is_no_model_is_refused(tmp_path):
    bad = tmp_path / "m.keras"
    bad.write_text("not a zip")
    with pytest.raises(ArtifactError, match="is not a readable .keras file"):
        blueprint_for(bad)
    with pytest.raises(ArtifactError, match="m.txt: is neither a .keras nor an .onnx"):
        blueprint_for(tmp_path / "m.txt")
    with pytest.raises(ArtifactError, match=r"m.weights.h5: holds weights but no architecture.*"
                       "--weights FILE"):
        blueprint_for(tmp_path / "m.weights.h5")
