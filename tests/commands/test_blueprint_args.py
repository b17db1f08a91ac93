"""What the blueprint-reading commands share: BLUEPRINT or -e, --set, and notes printed only
for the user's own text (a run's resolved copy had them printed when it was made)."""
from __future__ import annotations

import argparse

import pytest

from cnnbp.commands.blueprint_args import add_blueprint_args, compile_args, is_resolved_copy
from tests.builder.test_errors import GOOD

NOTED = GOOD.replace("kernel: 3", "kernel: [1, 5]")  # a size list: one per repetition
NOTE = ("note: layers.CONV.kernel [1, 5] is read as one value per repetition of *M (1, then 5);"
        " for a single 1x5 kernel, write 1x5\n")


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_blueprint_args(p)
    return p.parse_args(argv)


def test_blueprint_or_expression_and_repeated_sets():
    args = _args(["-e", "INPUT(8x8x1)-CONV(4,3)-FC(2)-SOFTMAX", "--set", "a=1", "--set", "b=2"])
    assert (args.blueprint, args.set) == (None, ["a=1", "b=2"])
    with pytest.raises(SystemExit):
        _args(["vgg16", "-e", "CONV(4,3)-SOFTMAX"])  # one or the other


def test_notes_are_printed_for_the_users_file_only(tmp_path, capsys):
    user = tmp_path / "mine.yaml"
    user.write_text(NOTED, encoding="utf-8")
    assert compile_args(_args([str(user)])).network.name == "small"
    assert capsys.readouterr().err == NOTE
    run = tmp_path / "run"
    run.mkdir()
    (run / "blueprint.yaml").write_text(NOTED, encoding="utf-8")
    (run / "preprocess.json").write_text("{}", encoding="utf-8")
    assert compile_args(_args([str(run)])).notes  # the note is still known ...
    assert capsys.readouterr().err == ""  # ... but not repeated


def test_a_resolved_copy_is_a_blueprint_yaml_beside_preprocess_json(tmp_path):
    (tmp_path / "blueprint.yaml").write_text(NOTED, encoding="utf-8")
    assert not is_resolved_copy(str(tmp_path))
    (tmp_path / "preprocess.json").write_text("{}", encoding="utf-8")
    assert is_resolved_copy(str(tmp_path)) and is_resolved_copy(str(tmp_path / "blueprint.yaml"))
    (tmp_path / "other.yaml").write_text(NOTED, encoding="utf-8")
    assert not is_resolved_copy(str(tmp_path / "other.yaml"))
