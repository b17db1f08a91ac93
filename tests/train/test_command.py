"""``cnnbp train``'s own module: the shorthand flags it turns into ``--set`` keys, and the flags
``--resume`` refuses rather than silently ignoring."""
import argparse

import pytest

from cnnbp.commands import train as command
from cnnbp.contract.errors import UsageError


def parse(*argv):
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    return parser.parse_args(["train", *argv])


def test_shorthand_flags_become_the_blueprint_keys_they_stand_for():
    args = parse("digits", "--set", "training.seed=3", "--epochs", "4", "--skip-bad-images",
                 "--cache", "disk")
    assert command.overrides(args) == ["training.seed=3", "training.epochs=4",
                                       "training.skip_bad_images=true", "training.cache=disk"]
    assert command.overrides(parse("digits")) == []


def test_resume_refuses_every_flag_that_would_change_the_run(tmp_path):
    args = parse("--resume", str(tmp_path), "--data", "digits", "--batch-size", "4")
    with pytest.raises(UsageError, match=r"--data, --batch-size cannot change it \(only "
                                         r"--epochs can\)"):
        command.run(args)


def test_a_new_run_needs_a_blueprint_data_and_an_output():
    with pytest.raises(UsageError, match=r"train needs BLUEPRINT \(or -e\), --data and -o"):
        command.run(parse("digits", "--data", "digits"))
