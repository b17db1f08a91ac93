"""``cnnbp explain``, ``report``, ``export`` and ``validate``: a wrong folder or argument is
refused naming it and nothing is written; ``validate`` prints its typed result."""
from __future__ import annotations

import shutil

import pytest

from cnnbp.commands import explain, export, report, validate
from cnnbp.commands.assemble import parse, parser
from cnnbp.contract.errors import ArtifactError, UsageError


def test_explain_refuses_channels_that_are_not_numbers(tmp_path):
    args = parse(parser(), ["explain", str(tmp_path), "--channels", "0,a", "-o",
                            str(tmp_path / "figures")])
    with pytest.raises(UsageError, match="--channels 0,a: give channel numbers"):
        explain.run(args)
    assert not (tmp_path / "figures").exists()


def test_report_refuses_a_folder_that_is_no_run_or_bundle(tmp_path):
    args = parse(parser(), ["report", str(tmp_path)])
    with pytest.raises(ArtifactError, match="is neither a run directory"):
        report.run(args)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_missing_source(tmp_path):
    args = parse(parser(), ["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "b")])
    with pytest.raises(ArtifactError, match="nothing: does not exist"):
        export.run(args)
    assert list(tmp_path.iterdir()) == []


def test_validate_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(ArtifactError, match=r"is not a bundle \(no model.onnx\)"):
        validate.run(parse(parser(), ["validate", str(tmp_path)]))


def test_validate_prints_one_line_and_exits_by_the_verdict(made, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(made / "bundle", bundle)
    assert validate.run(parse(parser(), ["validate", str(bundle)])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{bundle}: test vectors max |diff| ") and out.endswith(" — passed\n")
    assert "source weights unchanged" in out and out.count("\n") == 1
    # a bar no float32 model can meet: the same checks now fail, and the exit code says so
    assert validate.run(parse(parser(), ["validate", str(bundle), "--atol", "0"])) == 1
    assert capsys.readouterr().out.endswith(" — FAILED\n")
