"""ONNX export end to end: bundle contents, metadata, parity, refusal, validate, Triton config,
and pixels.onnx (the model with its preprocessing in the graph)."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import ROOT


def cnnbp(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    from cnnbp import cli  # in this process: the export below is the command under test
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "2", "-o", str(out),
                     "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("bundles")
    proc = cnnbp("export", str(run_dir), "-o", str(base / "digits"), "--max-batch", "32",
                 "--triton", str(base / "repo"), "--kserve", str(base / "isvc.yaml"))
    assert proc.returncode == 0, proc.stderr
    return base / "digits", base / "repo", proc


def test_bundle_has_every_file(bundle):
    folder, _, proc = bundle
    for name in ("model.onnx", "blueprint.yaml", "labels.txt", "preprocess.json",
                 "validation.json", "README.md", "pixels.onnx", "test_data_set_0/input_0.pb",
                 "test_data_set_0/output_0.pb", "variants/model.optimized.onnx",
                 "variants/model.fp16.onnx"):
        assert (folder / name).is_file(), name
    int8 = json.loads((folder / "validation.json").read_text())["variants"]["int8"]
    assert (folder / "variants/model.int8.onnx").is_file() == int8.get("kept", True)
    assert not list(folder.parent.glob(".*tmp*")), "temporary directory left behind"
    assert "Traceback" not in proc.stderr


def test_model_io_names_dynamic_batch_and_layer_names(bundle):
    model = onnx.load(str(bundle[0] / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "probabilities"
    dims = inp.type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and [d.dim_value for d in dims[1:]] == [8, 8, 1]
    nodes = {n.name.split("/")[0] for n in model.graph.node}
    assert {"stage1_conv1", "stage2_conv2", "fc1", "predictions"} <= nodes


def test_metadata_props(bundle, run_dir, keras):
    from cnnbp.export.onnx_export import weights_sha256
    meta = {p.key: p.value for p in onnx.load(str(bundle[0] / "model.onnx")).metadata_props}
    assert "pattern:" in meta["blueprint"]
    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["preprocess"])["scale"] == 16.0
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"} <= \
        set(json.loads(meta["versions"]))
    model = keras.models.load_model(run_dir / "model.keras")
    assert meta["weights_sha256"] == weights_sha256(model)


def test_validation_report_meets_the_bar(bundle):
    report = json.loads((bundle[0] / "validation.json").read_text())
    assert report["passed"] and report["keras_untouched"]
    assert {(c["inputs"], c["batch"]) for c in report["cases"]} == \
        {(k, b) for k in ("random", "held-out") for b in (1, 7, 32)}
    assert all(c["max_abs"] <= 1e-5 and c["top1_agreement"] == 1.0 for c in report["cases"])
    int8 = report["variants"]["int8"]  # kept only within 1 point of float32 test accuracy
    assert int8["test_accuracy"] - int8["fp32_test_accuracy"] == pytest.approx(
        int8["accuracy_change_points"] / 100, abs=1e-4)
    assert int8.get("kept", True) == (int8["accuracy_change_points"] > -1.0)


def test_test_vectors_reproduce_in_onnx_runtime(bundle):
    import onnxruntime as ort
    folder = bundle[0]
    x = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0/input_0.pb")))
    y = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0/output_0.pb")))
    got = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, y, atol=1e-5)


@pytest.mark.parametrize("variant,atol", [("optimized", 1e-5), ("fp16", 1e-2)])
def test_variants_run_and_agree(bundle, variant, atol):
    import onnxruntime as ort
    folder = bundle[0]
    x = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0/input_0.pb")))
    y = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0/output_0.pb")))
    got = ort.InferenceSession(str(folder / f"variants/model.{variant}.onnx")).run(
        None, {"input": x})[0]
    np.testing.assert_allclose(got, y, atol=atol)


def test_model_card(bundle):
    card = (bundle[0] / "README.md").read_text()
    assert "[8x8x32]" in card and "stage1_conv1" in card and "onnxruntime" in card
    assert "passed" in card
    assert "| class | precision | recall | F1 | test samples |" in card
    rows = [line for line in card.splitlines() if re.match(r"\| \d \| [01]\.\d{3} \| ", line)]
    assert [r.split(" | ")[0] for r in rows] == [f"| {d}" for d in range(10)]
    assert "raw pixel values from 0 to 16 (full white)" in card  # digits' gray levels
    assert "adam, learning rate" in card and "test samples" in card


def test_model_cards_client_runs_and_sends_digits_levels(bundle, tmp_path):
    import onnxruntime as ort
    from PIL import Image
    from sklearn.datasets import load_digits
    levels = load_digits().images[7]
    png = tmp_path / "photo.jpg"  # the card's file name; PNG data, as PIL reads by content
    Image.fromarray(np.rint(levels * 255 / 16).astype("uint8")).save(png, format="PNG")
    card = (bundle[0] / "README.md").read_text(encoding="utf-8")
    client = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert "levels 0..16 as the data holds them" in card
    proc = subprocess.run([sys.executable, "-c", client.replace("'photo.jpg'", repr(str(png)))],
                          cwd=bundle[0], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    probs = ort.InferenceSession(str(bundle[0] / "pixels.onnx")).run(
        ["probabilities"], {"pixels": levels.astype("uint8")[None, :, :, None]})[0]
    labels = (bundle[0] / "labels.txt").read_text(encoding="utf-8").splitlines()
    label, top = proc.stdout.split()
    assert label == labels[probs.argmax()] and abs(float(top) - probs.max()) < 1e-6


def test_triton_config_parses_with_tritons_protobufs(bundle):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    repo = bundle[1]
    config = text_format.Parse((repo / "digits" / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert config.name == "digits" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 32
    assert list(config.input[0].dims) == [8, 8, 1] and config.input[0].name == "pixels"
    assert config.input[0].data_type == model_config_pb2.TYPE_UINT8  # raw pixels, not floats
    assert list(config.output[0].dims) == [10] and config.output[0].name == "probabilities"
    assert config.output[0].label_filename == "labels.txt"
    assert (repo / "digits" / "labels.txt").read_text().splitlines() == [str(d) for d in range(10)]
    assert config.output[1].name == "label_index" and list(config.output[1].dims) == [1]
    assert config.output[1].data_type == model_config_pb2.TYPE_INT64
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    # the model Triton serves is the bundle's raw-input model, and its I/O is the config's
    served = (repo / "digits" / "1" / "model.onnx").read_bytes()
    assert served == (bundle[0] / "pixels.onnx").read_bytes()
    graph = onnx.load_from_string(served).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == \
        [("pixels", onnx.TensorProto.UINT8)]
    assert [o.name for o in graph.output] == [o.name for o in config.output]


def test_validate_passes_then_catches_a_tampered_vector(bundle, tmp_path):
    import shutil
    assert cnnbp("validate", str(bundle[0])).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    x = numpy_helper.to_array(onnx.load_tensor(str(copy / "test_data_set_0/output_0.pb")))
    (copy / "test_data_set_0/output_0.pb").write_bytes(
        numpy_helper.from_array(x[:, ::-1].copy(), "probabilities").SerializeToString())
    proc = cnnbp("validate", str(copy))
    assert proc.returncode == 1 and "FAILED" in proc.stdout


def test_failed_parity_refuses_and_leaves_nothing(run_dir, tmp_path):
    proc = cnnbp("export", str(run_dir), "-o", str(tmp_path / "b"), "--atol", "1e-12",
                 "--no-variants")
    assert proc.returncode == 1 and "no bundle written" in proc.stderr
    assert "first diverging layer" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_first_diverging_layer_is_named(run_dir, keras):
    from cnnbp.export.onnx_export import to_onnx
    from cnnbp.export.parity import measure
    model = keras.models.load_model(run_dir / "model.keras")
    proto = to_onnx(model)
    target = next(i for i in proto.graph.initializer
                  if i.name.startswith("stage2_conv1") and len(i.dims) == 4)
    w = numpy_helper.to_array(target).copy()
    w += 0.5
    target.CopyFrom(numpy_helper.from_array(w, target.name))
    report = measure(model, proto, None, (1, 7))
    assert not report.passed
    assert report.first_diverging_layer.layer == "stage2_conv1"


def test_export_from_a_keras_file_with_custom_layers(tmp_path):
    expr = ("INPUT(9x9x6)-CONV(6,3,pad=1)-RELU-LRN(5,alpha=0.01)-POOL(3,2,rounding=ceil)-"
            "CONV(4,3,stride=2,pad=1,rounding=floor)-GELU-GLOBAL_POOL-FC(7)-SOFTMAX")
    assert cnnbp("build", "-e", expr, "-o", str(tmp_path / "m.keras")).returncode == 0
    proc = cnnbp("export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "b"), "--no-variants")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "b" / "validation.json").read_text())
    assert report["passed"] and {c["inputs"] for c in report["cases"]} == {"random"}


WITHOUT_TF = ("import sys; from cnnbp import cli; code = cli.main(sys.argv[1:]); "
              "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); "
              "sys.exit(code)")


def test_missing_source_is_a_clear_error_before_tensorflow_starts(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-c", WITHOUT_TF, *args], cwd=ROOT,
                              capture_output=True, text=True)
    proc = run("export", str(tmp_path / "nope"), "-o", str(tmp_path / "b"))
    assert proc.returncode == 2 and "nope: does not exist" in proc.stderr
    assert "no tensorflow" in proc.stdout
    (tmp_path / "empty").mkdir()
    proc = run("export", str(tmp_path / "empty"), "-o", str(tmp_path / "b"))
    assert proc.returncode == 2 and "neither a finished run directory" in proc.stderr
    assert "no tensorflow" in proc.stdout
    proc = run("validate", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "is not a bundle (no model.onnx)" in proc.stderr
    assert "no tensorflow" in proc.stdout
    assert not (tmp_path / "b").exists()


def test_too_large_for_the_machine_is_refused_before_starting(keras):
    from cnnbp.builder import build_model, load
    from cnnbp.contract.errors import RefusedError
    from cnnbp.export import memory
    model = build_model(load("vgg16").network)
    total, weights, activations = memory.needed_bytes(model, 64)
    assert weights == 138_357_544 * 4  # every parameter, float32
    with pytest.raises(RefusedError, match=r"needs about .* GiB .* lower --max-batch"):
        memory.ensure_fits(model, 64, available=total - 1)
    memory.ensure_fits(model, 64, available=total)  # exactly enough is enough
    keras.backend.clear_session()


def test_memory_estimate_agrees_with_the_static_analysis(keras):
    from cnnbp.builder import build_model, load
    from cnnbp.export import memory
    compiled = load("vgg16")
    _, _, activations = memory.needed_bytes(build_model(compiled.network), 1)
    # two independent counts of float32 activations per image: Keras layers vs the analysis
    assert activations == 2 * compiled.analysis.total_memory
    keras.backend.clear_session()


# -- pixels.onnx: the model with its preprocessing in the graph ---------------------------------
def test_pixels_model_is_model_onnx_with_preprocessing_in_front(bundle):
    model = onnx.load(str(bundle[0] / "model.onnx"))
    raw = onnx.load(str(bundle[0] / "pixels.onnx"))
    onnx.checker.check_model(raw, full_check=True)
    (inp,) = raw.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "pixels" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not dims[0].HasField("dim_value") and [d.dim_value for d in dims[1:]] == [8, 8, 1]
    assert [o.name for o in raw.graph.output] == ["probabilities", "label_index"]
    assert [n.op_type for n in raw.graph.node[:3]] == ["Cast", "Mul", "Add"]
    assert raw.graph.node[3:-1] == model.graph.node[:]  # model.onnx's nodes, untouched
    assert raw.graph.node[-1].op_type == "ArgMax"
    ours = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    theirs = {i.name: numpy_helper.to_array(i) for i in raw.graph.initializer}
    assert all(np.array_equal(v, theirs[k]) for k, v in ours.items())
    meta = {p.key: p.value for p in raw.metadata_props}
    assert {p.key: p.value for p in model.metadata_props}.items() <= meta.items()
    assert json.loads(meta["input"])["dtype"] == "uint8"


def test_pixels_model_on_raw_digits_equals_keras_on_the_documented_formula(bundle, run_dir, keras):
    import onnxruntime as ort
    from sklearn.datasets import load_digits
    levels = load_digits().images  # every row: 0..16 gray levels, as a user has them
    prep = json.loads((bundle[0] / "preprocess.json").read_text())
    assert prep["raw_max"] == 16 and prep["scale"] == 16
    x = (levels[..., None] / prep["scale"] - prep["mean"]) / prep["std"]  # float64, by hand
    want = np.asarray(keras.models.load_model(run_dir / "model.keras")(x.astype("float32")))
    probs, index = ort.InferenceSession(str(bundle[0] / "pixels.onnx")).run(
        None, {"pixels": levels.astype("uint8")[..., None]})
    np.testing.assert_allclose(probs, want, atol=1e-5)
    assert (probs.argmax(1) == want.argmax(1)).all() and (index[:, 0] == want.argmax(1)).all()


def test_pixels_parity_is_recorded(bundle):
    report = json.loads((bundle[0] / "validation.json").read_text())["pixels"]
    assert report["passed"] and report["file"] == "pixels.onnx" and report["input_dtype"] == "uint8"
    assert {(c["inputs"], c["batch"]) for c in report["cases"]} == \
        {(k, b) for k in ("random", "held-out") for b in (1, 7, 32)}
    assert all(c["max_abs"] <= 1e-5 and c["top1_agreement"] == 1.0 for c in report["cases"])
    card = (bundle[0] / "README.md").read_text()
    assert "pixels.onnx on raw `uint8` inputs" in card and "{'pixels': x}" in card


def test_validate_catches_a_pixels_model_with_the_wrong_preprocessing(bundle, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    raw = onnx.load(str(copy / "pixels.onnx"))
    gain = next(i for i in raw.graph.initializer if i.name == "preprocess/gain")
    gain.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(gain) * 255, gain.name))
    onnx.save(raw, str(copy / "pixels.onnx"))
    proc = cnnbp("validate", str(copy))
    assert proc.returncode == 1 and "FAILED" in proc.stdout and "pixels.onnx" in proc.stdout


def test_pixels_model_that_misses_parity_refuses_the_export(run_dir, tmp_path, monkeypatch):
    from cnnbp.export import bundle as exporting
    from cnnbp.export import pixels
    build = pixels.build

    def off_by_one_level(model, prep):  # a graph that reads pixels one level too bright
        proto = build(model, prep)
        shift = next(i for i in proto.graph.initializer if i.name == "preprocess/shift")
        gain = numpy_helper.to_array(next(i for i in proto.graph.initializer
                                          if i.name == "preprocess/gain"))
        shift.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(shift) + gain, shift.name))
        return proto
    monkeypatch.setattr(pixels, "build", off_by_one_level)
    with pytest.raises(exporting.ExportRefused, match="pixels.onnx on raw inputs disagrees"):
        exporting.export_bundle(run_dir, tmp_path / "b", with_variants=False)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_gain_shift_is_refused_by_a_reference_that_does_not_move_with_it(
        run_dir, tmp_path, monkeypatch):
    # gain_shift builds the graph's constants; the gate's references (the stored held-out rows,
    # Preprocessing.apply) must not follow it, or a wrong fold would pass its own check
    from cnnbp.contract.preprocessing import Preprocessing
    from cnnbp.export import bundle as exporting
    right = Preprocessing.gain_shift

    def one_level_too_bright(self, unit=1.0):
        gain, shift = right(self, unit)
        return gain, shift + gain
    monkeypatch.setattr(Preprocessing, "gain_shift", one_level_too_bright)
    with pytest.raises(exporting.ExportRefused, match="pixels.onnx on raw inputs disagrees"):
        exporting.export_bundle(run_dir, tmp_path / "b", with_variants=False)
    assert list(tmp_path.iterdir()) == []


def test_validate_refuses_a_bundle_whose_pixels_model_was_deleted(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    (copy / "pixels.onnx").unlink()  # validation.json still records its parity result
    proc = cnnbp("validate", str(copy))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "pixels.onnx" in proc.stderr and "is missing" in proc.stderr, proc.stderr
    assert "export it again" in proc.stderr


@pytest.mark.parametrize("name", ['my "model"', "a b", "new\nline"])
def test_a_model_name_triton_cannot_hold_is_refused_before_any_work(run_dir, tmp_path, capsys,
                                                                    name):
    from cnnbp import cli
    code = cli.main(["export", str(run_dir), "-o", str(tmp_path / name), "--triton",
                     str(tmp_path / "repo"), "--kserve", str(tmp_path / "isvc.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and repr(name) in err and "letters, digits, '_', '.' and '-'" in err, err
    assert list(tmp_path.iterdir()) == []


# -- KServe --------------------------------------------------------------------------------------
def test_kserve_manifest_serves_the_triton_repository(bundle):
    from ruamel.yaml import YAML
    doc = YAML(typ="safe", pure=True).load((bundle[0].parent / "isvc.yaml").read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "digits"
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "onnx"} and model["protocolVersion"] == "v2"
    assert model["storageUri"].startswith("s3://YOUR-BUCKET")  # a placeholder the user fills in
    assert set(model["resources"]) == {"requests", "limits"}
    assert model["resources"]["limits"]["memory"].endswith("Gi")
    assert "nvidia.com/gpu" not in model["resources"]["limits"]
    assert "isvc.yaml" in bundle[2].stdout


def test_kserve_without_a_repository_or_over_a_users_file_is_refused(run_dir, tmp_path):
    proc = cnnbp("export", str(run_dir), "-o", str(tmp_path / "b"), "--kserve",
                 str(tmp_path / "isvc.yaml"))
    assert proc.returncode == 2 and "add --triton REPO" in proc.stderr
    mine = tmp_path / "mine.yaml"
    mine.write_text("kind: Pod\n")
    proc = cnnbp("export", str(run_dir), "-o", str(tmp_path / "b"), "--triton",
                 str(tmp_path / "repo"), "--kserve", str(mine))
    assert proc.returncode == 2 and "was not written by cnnbp export" in proc.stderr
    assert mine.read_text() == "kind: Pod\n" and not (tmp_path / "b").exists()


def test_kserve_over_an_edited_manifest_is_refused_and_an_unedited_one_rewritten(tmp_path):
    from cnnbp.contract.errors import UsageError
    from cnnbp.export.kserve import check_target, write_manifest
    (tmp_path / "digits" / "1").mkdir(parents=True)
    (tmp_path / "digits" / "1" / "model.onnx").write_bytes(b"0" * 1000)
    target = tmp_path / "isvc.yaml"
    write_manifest(target, "digits", tmp_path / "digits")
    check_target(target)  # as written: a re-export may replace it
    edited = target.read_text().replace("s3://YOUR-BUCKET/PATH/TO/MODEL-REPOSITORY",
                                        "s3://my-bucket/models")
    target.write_text(edited)
    with pytest.raises(UsageError, match="was edited since cnnbp export wrote it"):
        write_manifest(target, "digits", tmp_path / "digits")
    assert target.read_text() == edited


def test_large_weights_are_stored_once_and_both_models_read_them(run_dir, tmp_path, monkeypatch):
    import onnxruntime as ort

    from cnnbp.export import bundle as exporting
    from cnnbp.export import onnx_export
    from cnnbp.export.triton import write_repository
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)  # as if over 256 MiB
    out = tmp_path / "b"
    report = exporting.export_bundle(run_dir, out, with_variants=False).report
    assert report.pixels.passed and (out / "model.onnx.data").is_file()
    assert not (out / "pixels.onnx.data").exists()
    assert (out / "pixels.onnx").stat().st_size < (out / "model.onnx.data").stat().st_size
    folder = write_repository(tmp_path / "repo", "b", out, report.input_shape, report.classes,
                              8, "KIND_CPU")
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype="uint8")
    here = ort.InferenceSession(str(out / "pixels.onnx")).run(None, {"pixels": x})[0]
    shutil.rmtree(out)  # the repository must stand on its own
    there = ort.InferenceSession(str(folder / "1" / "model.onnx")).run(None, {"pixels": x})[0]
    np.testing.assert_array_equal(here, there)


def test_any_size_variant_resizes_in_the_graph_and_carries_its_measured_agreement(bundle):
    import onnxruntime as ort
    from PIL import Image
    from sklearn.datasets import load_sample_images
    folder = bundle[0]
    found = json.loads((folder / "validation.json").read_text())["variants"]["pixels_anysize"]
    assert found["kept"] and found["file"] == "variants/pixels.anysize.onnx"
    assert 0 <= found["top1_agreement"] <= 1 and "PNG alone: top-1 agreement" in found["note"]
    assert "variant pixels_anysize: kept" in (folder / "README.md").read_text()
    anysize = ort.InferenceSession(str(folder / found["file"]))
    fixed = ort.InferenceSession(str(folder / "pixels.onnx"))
    (inp,) = anysize.get_inputs()
    assert inp.name == "pixels" and inp.type == "tensor(uint8)" and inp.shape[1:3] == ["height",
                                                                                       "width"]
    assert fixed.get_inputs()[0].shape[1:] == [8, 8, 1]  # the default stays fixed-size
    photo = Image.fromarray(load_sample_images().images[0]).convert("L")
    for size in ((61, 47), (9, 13)):  # down and up; Pillow's bilinear as training resizes
        im = photo.resize(size, Image.Resampling.LANCZOS)
        whole = np.asarray(im, "uint8")[None, :, :, None]
        small = np.asarray(im.resize((8, 8), Image.Resampling.BILINEAR), "uint8")[None, :, :, None]
        small = np.rint(small / 255 * 16).astype("uint8")  # digits take levels 0..16
        got = anysize.run(["probabilities"], {"pixels": whole})[0]
        want = fixed.run(["probabilities"], {"pixels": small})[0]
        np.testing.assert_allclose(got, want, atol=0.02)


def test_validate_gives_a_typed_frozen_result_that_prints_itself(bundle):
    import dataclasses

    from cnnbp.export.validate import Validation, validate_bundle
    found = validate_bundle(bundle[0])
    assert isinstance(found, Validation) and found.passed and found.source_unchanged
    assert found.parity.passed and found.parity.max_abs <= 1e-5 and len(found.parity.cases) == 3
    assert found.pixels.passed and found.pixels.vectors.label_index_matches
    assert found.test_vectors.passed and found.note is None
    assert str(found).startswith("test vectors max |diff| ") and str(found).endswith("— passed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.passed = False


def test_accuracy_counts_the_rows_whose_label_is_the_argmax(bundle):
    import onnxruntime as ort

    from cnnbp.export import variants
    x = numpy_helper.to_array(onnx.load_tensor(str(bundle[0] / "test_data_set_0" /
                                                   "input_0.pb")))
    x = np.concatenate([x, x * 0.5, -x])
    sess = ort.InferenceSession(str(bundle[0] / "model.onnx"),
                                providers=["CPUExecutionProvider"])
    predicted = sess.run(None, {"input": x})[0].argmax(1)
    assert variants.accuracy(bundle[0] / "model.onnx", x, predicted) == 1.0
    assert variants.accuracy(bundle[0] / "model.onnx", x, (predicted + 1) % 10) == 0.0


def test_the_any_size_variant_is_offered_only_for_stretched_images():
    from cnnbp.contract.preprocessing import Preprocessing
    from cnnbp.export.anysize import offered
    image = Preprocessing.identity([8, 8, 3], 2)
    assert offered(image)
    assert not offered(image.model_copy(update={"resize": "letterbox"}))
    assert not offered(Preprocessing.identity([40, 1], 2))
