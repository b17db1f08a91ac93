"""Damaged run folders and bundles, through the real CLI: every case ends with exit 0, 1 or 2
and one message naming the file, never a traceback; nothing of the user's is deleted."""
import shutil

import numpy as np
import pytest

from cnnbp import cli


def run_cli(capsys, *args):
    code = cli.main(list(args))  # an uncaught exception fails the test with its traceback
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err
    return code, err


def damaged(table, case, source, folder):
    """A copy of ``source`` in ``folder`` with the damage ``table[case]`` done; returns the copy
    and the damaged file's name."""
    name, damage = table[case]
    shutil.copytree(source, folder)
    damage(folder / name)
    return folder, name.split("/")[-1]


def half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def foreign_npz(path):
    np.savez(path, w0=np.zeros(3, "float32"))


RUN_DAMAGE = {
    "state.json empty": ("state/state.json", lambda p: p.write_text("")),
    "state.json garbage": ("state/state.json", lambda p: p.write_bytes(b"\x00\xffnot json")),
    "state.json truncated": ("state/state.json", half),
    "state.json epoch as text": ("state/state.json",
                                 lambda p: p.write_text(p.read_text().replace('"epoch": 1',
                                                                              '"epoch": "1"'))),
    "checkpoint outside the run": ("state/state.json", lambda p: p.write_text(
        p.read_text().replace("state/epoch-1.npz", "../../../etc/passwd"))),
    "state.json missing": ("state/state.json", lambda p: p.unlink()),
    "checkpoint truncated": ("state/epoch-1.npz", half),
    "checkpoint empty": ("state/epoch-1.npz", lambda p: p.write_bytes(b"")),
    "checkpoint of another net": ("state/epoch-1.npz", foreign_npz),
    "checkpoint missing": ("state/epoch-1.npz", lambda p: p.unlink()),
    "preprocess.json empty": ("preprocess.json", lambda p: p.write_text("")),
    "preprocess.json a list": ("preprocess.json", lambda p: p.write_text("[1]")),
    "preprocess.json without mean": ("preprocess.json", lambda p: p.write_text("{}")),
    "blueprint.yaml garbage": ("blueprint.yaml", lambda p: p.write_text("name: [unclosed")),
}


@pytest.mark.parametrize("case", sorted(RUN_DAMAGE))
def test_resume_of_a_damaged_run(case, made, tmp_path, capsys):
    run, _ = damaged(RUN_DAMAGE, case, made / "run", tmp_path / "run")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    code, err = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 2 and str(run) in err, err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing removed


EXPORT_DAMAGE = {
    "model.keras truncated": ("model.keras", half),
    "model.keras garbage": ("model.keras", lambda p: p.write_bytes(b"PK\x03\x04 not a zip")),
    "metrics.json garbage": ("metrics.json", lambda p: p.write_text("{")),
    "metrics.json without figures": ("metrics.json", lambda p: p.write_text("{}")),
    "state.json garbage": ("state/state.json", lambda p: p.write_text("]")),
    "preprocess.json empty": ("preprocess.json", lambda p: p.write_text("")),
    "blueprint.yaml not text": ("blueprint.yaml", lambda p: p.write_bytes(b"\xff\xfe\x00")),
    "samples.npz truncated": ("samples.npz", half),
    "samples.npz of another net": ("samples.npz", foreign_npz),
    "preprocess.json of another net": ("preprocess.json", lambda p: p.write_text(
        p.read_text().replace('"input_shape": [\n    8,', '"input_shape": [\n    9,'))),
}


@pytest.mark.parametrize("case", sorted(EXPORT_DAMAGE))
def test_export_of_a_damaged_run(case, made, tmp_path, capsys):
    run, name = damaged(EXPORT_DAMAGE, case, made / "run", tmp_path / "run")
    code, err = run_cli(capsys, "export", str(run), "-o", str(tmp_path / "out"), "--no-variants")
    assert code == 2 and name in err, err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


BUNDLE_DAMAGE = {
    "model.onnx truncated": ("model.onnx", half),
    "model.onnx garbage": ("model.onnx", lambda p: p.write_bytes(b"\x08\x07garbage" * 9)),
    "model.onnx empty": ("model.onnx", lambda p: p.write_bytes(b"")),
    "input_0.pb empty": ("test_data_set_0/input_0.pb", lambda p: p.write_bytes(b"")),
    "input_0.pb garbage": ("test_data_set_0/input_0.pb", lambda p: p.write_bytes(b"\xff" * 40)),
    "output_0.pb missing": ("test_data_set_0/output_0.pb", lambda p: p.unlink()),
    "validation.json garbage": ("validation.json", lambda p: p.write_text("}{")),
    "validation.json empty": ("validation.json", lambda p: p.write_text("")),
    "validation.json atol as text": ("validation.json", lambda p: p.write_text('{"atol": "x"}')),
    "validation.json a list": ("validation.json", lambda p: p.write_text("[]")),
}


@pytest.mark.parametrize("case", sorted(BUNDLE_DAMAGE))
def test_validate_of_a_damaged_bundle(case, made, tmp_path, capsys):
    bundle, name = damaged(BUNDLE_DAMAGE, case, made / "bundle", tmp_path / "bundle")
    code, err = run_cli(capsys, "validate", str(bundle))
    assert code in (1, 2) and name in err, err


def test_the_undamaged_run_and_bundle_pass(made, tmp_path, capsys):
    shutil.copytree(made / "run", tmp_path / "run")
    assert run_cli(capsys, "train", "--resume", str(tmp_path / "run"), "--quiet")[0] == 0
    assert run_cli(capsys, "validate", str(made / "bundle"))[0] == 0
