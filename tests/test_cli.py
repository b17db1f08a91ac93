"""The cnnbp command as a user runs it: exit codes, output, no tracebacks, no TensorFlow for
check."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnbp import cli
from tests.conftest import ROOT, SHIPPED


def run(*args, **kw):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, **kw)


def test_check_json_has_the_documented_keys():
    proc = run("check", "blueprints/vgg16.yaml", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total_params"] == 138_357_544 and doc["total_macs"] == 15_470_264_320
    first = doc["layers"][0]
    assert {"name", "type", "output_shape", "params", "macs", "receptive_field"} <= set(first)
    assert first["name"] == "stage1_conv1" and first["output_shape"] == [224, 224, 64]


def test_check_does_not_import_tensorflow():
    code = ("import sys, cli; rc = cli.main(['check', 'vgg16']); "
            "assert rc == 0; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_show_prints_the_lecture_table(capsys):
    assert cli.main(["show", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "[55x55x96]" in out and "96 11x11 filters at stride 4, pad 0" in out and "34,944" in out


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_blueprint_checks(name, capsys):
    assert cli.main(["check", name]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: ok")


def test_bad_blueprint_exits_2_with_one_message():
    proc = run("check", "-e", "INPUT(7x7x1)-CONV(1,3,stride=3)-SOFTMAX", "--set", "classes=2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "(7 - 3)/3 + 1 = 2.33" in proc.stderr


def test_set_overrides_variables(capsys):
    assert cli.main(["check", "mnist1d", "--set", "N=1", "--set", "K=2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [layer["type"] for layer in doc["layers"]].count("CONV") == 3
    assert [layer["type"] for layer in doc["layers"]].count("FC") == 3


def test_help_has_examples():
    proc = run("--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "cnnbp check" in proc.stdout


def test_console_script_is_installed():
    script = ROOT / ".venv" / "bin" / "cnnbp"
    if not script.exists():
        pytest.skip("not run from the project's .venv")
    proc = subprocess.run([str(script), "check", "lenet5"], capture_output=True, text=True)
    assert proc.returncode == 0 and "61,706 params" in proc.stdout


def test_installs_only_the_cnnbp_name():
    from importlib.metadata import distribution
    top = distribution("cnn-blueprint").read_text("top_level.txt").split()
    assert top == ["cnnbp"]
    code = ("import importlib.util as u; import cnnbp.builder, cnnbp.cli; "
            "print([n for n in ('builder', 'contract', 'train', 'export', 'serve', 'cli') "
            "if u.find_spec(n)])")
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_build_writes_a_loadable_model(tmp_path, keras):
    out = tmp_path / "sub" / "digits.keras"
    proc = run("build", "digits", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "cudart" not in proc.stderr and "cuInit" not in proc.stderr
    model = keras.models.load_model(out, safe_mode=True)
    assert model.count_params() == 99_178


def test_build_refuses_a_wrong_suffix(tmp_path):
    proc = run("build", "digits", "-o", str(tmp_path / "model.h5"))
    assert proc.returncode == 2 and "must end in .keras" in proc.stderr
    assert not list(tmp_path.iterdir())


# --- generated bad input never produces a traceback -----------------------------------------
PIECES = ["CONV", "RELU", "POOL", "FC", "SOFTMAX", "LRN", "BN", "(", ")", "[", "]", "-", "*",
          "?", "N", "M", "2", "0", "3x3", ",", "=", "stride", "(8)", "(3, 2)", "COV",
          "INPUT(8x8x1)"]
VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True)
                      | st.text(max_size=12) | st.sampled_from(["3x3", "same", "valid", "avg"]),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                          st.sampled_from(["CONV", "POOL", "FC", "filters", "kernel", "units",
                                           "stride", "x"]), inner, max_size=3), max_leaves=8)


@st.composite
def bad_blueprints(draw):
    doc = {"name": draw(st.sampled_from(["x", "a b", ""])),
           "pattern": "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=14)))}
    for key in draw(st.lists(st.sampled_from(["input", "classes", "vars", "layers", "weights",
                                              "strict", "class_names", "bogus"]), max_size=5)):
        doc[key] = draw(VALUES)
    return doc


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=bad_blueprints())
def test_generated_blueprints_never_crash(doc, tmp_path, capsys):
    path = tmp_path / "fuzz.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    assert cli.main(["check", str(path)]) in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_predict_takes_options_anywhere_and_needs_files(made, tmp_path):
    from PIL import Image
    image = tmp_path / "d.png"
    Image.new("L", (8, 8), 128).save(image)
    bundle = str(made / "bundle")
    after = run("predict", bundle, "--top-k", "2", str(image))
    before = run("predict", "--top-k", "2", bundle, str(image))
    assert after.returncode == before.returncode == 0, after.stderr
    assert after.stdout == before.stdout and after.stdout.count("(") == 2
    empty = run("predict", bundle)
    assert empty.returncode == 2 and "no files to classify" in empty.stderr
    assert "Traceback" not in empty.stderr


def test_predict_json_gives_full_precision_probabilities(made, tmp_path, capsys):
    import onnxruntime as ort
    from PIL import Image
    image = tmp_path / "d.png"
    Image.new("L", (8, 8), 200).save(image)
    assert cli.main(["predict", str(made / "bundle"), str(image), "--top-k", "10", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == str(image) and len(doc["top_k"]) == 10
    # model.onnx in plain ONNX Runtime on the documented formula, written out here
    prep = json.loads((made / "bundle" / "preprocess.json").read_text())
    raw = np.full((1, 8, 8, 1), 200.0) / 255 * prep["raw_max"]
    x = ((raw / prep["scale"] - np.array(prep["mean"])) / np.array(prep["std"])).astype("float32")
    session = ort.InferenceSession(str(made / "bundle" / "model.onnx"))
    probs = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    for t in doc["top_k"]:
        assert abs(t["probability"] - float(probs[t["index"]])) <= 1e-6


def test_an_unreachable_server_is_a_server_problem(tmp_path):
    from tests.conftest import free_port
    (tmp_path / "d.png").write_bytes(b"")
    proc = run("predict", "--url", f"http://127.0.0.1:{free_port()}", "--model", "digits",
               str(tmp_path / "d.png"))
    assert proc.returncode == 1 and "cannot reach" in proc.stderr and "Traceback" not in proc.stderr


def test_list_names_every_shipped_blueprint_and_show_yaml_prints_one():
    proc = run("list")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()[:-1]]
    assert names == sorted(p.stem for p in (ROOT / "blueprints").glob("*.yaml"))
    assert "vgg16" in proc.stdout and "138,357,544 params" in proc.stdout
    shown = run("show", "lenet5", "--yaml")
    assert shown.returncode == 0
    assert shown.stdout == (ROOT / "blueprints" / "lenet5.yaml").read_text(encoding="utf-8")


def test_train_refuses_an_earlier_run_and_replaces_it_with_force(made, tmp_path, capsys):
    import shutil

    from cnnbp import cli
    run_dir = tmp_path / "run"
    shutil.copytree(made / "run", run_dir)
    (run_dir / "note.txt").write_text("an earlier run's file")
    args = ["train", "digits", "--data", "digits", "--epochs", "1", "--quiet", "-o", str(run_dir)]
    assert cli.main(args) == 2
    assert f"already holds a finished run; train it further with `cnnbp train --resume " \
        f"{run_dir} --epochs N`" in capsys.readouterr().err and (run_dir / "note.txt").exists()
    assert cli.main(args + ["--force"]) == 2  # the user's file is never deleted
    assert "note.txt" in capsys.readouterr().err and (run_dir / "note.txt").exists()
    (run_dir / "note.txt").unlink()
    before = (run_dir / "state" / "state.json").stat().st_mtime_ns
    assert cli.main(args + ["--force"]) == 0
    assert (run_dir / "state" / "state.json").stat().st_mtime_ns != before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no .old or .tmp left behind


def test_resume_with_epochs_extends_a_finished_run(made, tmp_path, capsys):
    import shutil

    from cnnbp import cli
    run_dir = tmp_path / "run"
    shutil.copytree(made / "run", run_dir)  # finished after 1 epoch
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2", "--quiet"]) == 0
    rows = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]
    assert "epochs: 2" in (run_dir / "blueprint.yaml").read_text()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "1", "--quiet"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run_dir), "--set", "training.seed=3"]) == 2
    assert "--set cannot change it" in capsys.readouterr().err


def test_a_run_being_trained_is_not_resumed_beside_it(made, tmp_path, capsys):
    import os
    import shutil

    from cnnbp import cli
    from cnnbp.contract.rundir import RunDir
    run_dir = tmp_path / "run"
    shutil.copytree(made / "run", run_dir)
    held = RunDir(run_dir).hold()  # as the process training it holds it
    try:
        assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2", "--quiet"]) == 2
        assert f"{run_dir}: is being trained by another cnnbp process (pid {os.getpid()}); " \
            "wait for it to end, or stop it and resume" in capsys.readouterr().err
        assert len((run_dir / "history.csv").read_text().splitlines()) == 2  # untouched
    finally:
        os.close(held)
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2", "--quiet"]) == 0
    assert f"resuming from epoch 2 of 2 ({run_dir})" in capsys.readouterr().out
    assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0  # nothing to train
    assert f"{run_dir} has finished after 2 of 2 epochs: evaluating it again" in \
        capsys.readouterr().out


def test_the_console_script_exits_with_the_commands_code_and_all_its_output(capsys):
    """``cnnbp`` skips the interpreter's teardown (cli.run): what the command printed still
    arrives whole, through a pipe, and its exit code is the command's."""
    from cnnbp import cli
    script = str(Path(sys.executable).with_name("cnnbp"))
    assert "from cnnbp.cli import run" in Path(script).read_text()  # setup.cfg's entry point
    assert cli.main(["show", "vgg16"]) == 0
    expected = capsys.readouterr().out
    proc = subprocess.run([script, "show", "vgg16"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == expected and len(expected) > 2000
    proc = subprocess.run([script, "export", "no-such-run", "-o", "b"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no-such-run: does not exist")


@pytest.mark.parametrize("k", ["0", "-5"])
def test_predict_refuses_a_top_k_below_one(k, capsys):
    assert cli.main(["predict", "bundle", "--top-k", k, "image.png"]) == 2
    assert f"--top-k must be 1 or more (the classes to print for each file, best first), " \
           f"got {k}" in capsys.readouterr().err
