"""Export never deletes what it did not write: its source, the current folder, a user's files."""
import json
import os
import shutil

import numpy as np
import pytest

from cnnbp import cli


def export(capsys, *args):
    code = cli.main(["export", *args, "--no-variants"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def tree(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else b"")
                  for p in folder.rglob("*"))


@pytest.fixture
def run(made, tmp_path):
    shutil.copytree(made / "run", tmp_path / "runs" / "digits")
    return tmp_path / "runs" / "digits"


def test_a_folder_of_user_files_is_refused_then_moved_aside_with_force(run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    code, _, err = export(capsys, str(run), "-o", str(mine))
    assert code == 2 and "notes.txt" in err and "--force" in err
    assert (mine / "notes.txt").read_text() == "precious" and len(list(mine.iterdir())) == 1
    code, out, _ = export(capsys, str(run), "-o", str(mine), "--force")
    assert code == 0 and (mine / "model.onnx").is_file()
    (moved,) = tmp_path.glob("mine.replaced-*")
    assert (moved / "notes.txt").read_text() == "precious" and str(moved) in out


@pytest.mark.parametrize("target", ["the run", "its parent", "the current folder", "above it"])
def test_an_output_that_is_or_holds_the_source_or_the_cwd_is_refused(run, tmp_path, capsys,
                                                                      monkeypatch, target):
    monkeypatch.chdir(run.parent)  # runs/
    out = {"the run": str(run), "its parent": str(run.parent), "the current folder": ".",
           "above it": ".."}[target]
    before = tree(tmp_path)
    for force in ([], ["--force"]):  # --force never overrides these
        code, _, err = export(capsys, str(run), "-o", out, *force)
        assert code == 2 and ("which this export reads" in err or "current folder" in err), err
    assert tree(tmp_path) == before


def test_an_output_that_is_a_file_is_refused(run, tmp_path, capsys):
    (tmp_path / "x.onnx").write_text("mine")
    code, _, err = export(capsys, str(run), "-o", str(tmp_path / "x.onnx"))
    assert code == 2 and "is a file" in err and (tmp_path / "x.onnx").read_text() == "mine"


def test_an_earlier_bundle_is_refused_then_replaced_atomically_with_force(run, made, tmp_path,
                                                                           capsys):
    out = tmp_path / "bundles" / "digits"
    shutil.copytree(made / "bundle", out)
    stamp = (out / "validation.json").stat().st_mtime_ns
    code, _, err = export(capsys, str(run), "-o", str(out))  # the same rule as `train -o`
    assert code == 2 and "already holds a bundle; add --force to replace it" in err
    assert (out / "validation.json").stat().st_mtime_ns == stamp
    code, _, _ = export(capsys, str(run), "-o", str(out), "--force")
    assert code == 0 and (out / "validation.json").stat().st_mtime_ns != stamp
    assert os.listdir(out.parent) == ["digits"]  # no .old or .tmp left


def test_a_triton_target_over_the_run_is_refused_before_any_work(run, tmp_path, capsys):
    # --triton runs/ with -o bundles/digits would make runs/digits, the run itself, the model
    before = tree(run)
    code, _, err = export(capsys, str(run), "-o", str(tmp_path / "bundles" / "digits"),
                          "--triton", str(run.parent))
    assert code == 2 and "--triton" in err and "which this export reads" in err
    assert tree(run) == before and not (tmp_path / "bundles").exists()


def test_a_triton_folder_of_user_files_is_refused(run, tmp_path, capsys):
    (tmp_path / "repo" / "digits").mkdir(parents=True)
    (tmp_path / "repo" / "digits" / "notes.txt").write_text("mine")
    code, _, err = export(capsys, str(run), "-o", str(tmp_path / "b" / "digits"),
                          "--triton", str(tmp_path / "repo"))
    assert code == 2 and "notes.txt" in err
    assert (tmp_path / "repo" / "digits" / "notes.txt").read_text() == "mine"


def test_export_needs_no_data_source(tmp_path, capsys, keras):
    # A uint8 .npz trained in 0..255, deleted before the export: the run keeps what export needs.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 8, 8, 1), dtype=np.uint8)
    y = np.arange(120) % 10
    data = tmp_path / "pixels.npz"
    np.savez(data, x_train=x[:100], y_train=y[:100], x_test=x[100:], y_test=y[100:])
    assert cli.main(["train", "digits", "--data", str(data), "--epochs", "1", "--quiet",
                     "-o", str(tmp_path / "run")]) == 0
    data.unlink()
    code, _, err = export(capsys, str(tmp_path / "run"), "-o", str(tmp_path / "bundle"))
    assert code == 0, err
    report = json.loads((tmp_path / "bundle" / "validation.json").read_text())
    assert {c["inputs"] for c in report["cases"]} == {"random", "held-out"}
    prep = json.loads((tmp_path / "bundle" / "preprocess.json").read_text())
    assert prep["domain"] == "image" and prep["raw_max"] == 255.0 and prep["scale"] == 1.0


def test_a_bundle_exported_with_relative_paths_validates_from_anywhere(run, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export(capsys, "runs/digits", "-o", "bundles/d")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["validate", str(tmp_path / "bundles" / "d")]) == 0
    out = capsys.readouterr().out
    assert "parity vs source model" in out and "not found" not in out
