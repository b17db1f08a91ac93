"""``cnnbp.commands.assemble``: every command module registers one subcommand, and ``parse``
adds what argparse lacks (a did-you-mean for a mistyped command, files after options)."""
from __future__ import annotations

import importlib

import pytest

from cnnbp.commands import MODULES
from cnnbp.commands.assemble import parse, parser


def test_every_command_module_registers_its_own_name_and_run():
    p = parser()
    commands = p.get_default("commands")
    assert list(commands) == list(MODULES)
    for name in MODULES:
        module = importlib.import_module(f"cnnbp.commands.{name}")
        assert callable(module.register) and callable(module.run)
        assert commands[name].get_default("run") is module.run


def test_files_after_options_join_the_file_list():
    args = parse(parser(), ["predict", "b", "f1", "--top-k", "1", "f2", "f3"])
    assert (args.bundle, args.files, args.top_k) == ("b", ["f1", "f2", "f3"], 1)


@pytest.mark.parametrize("argv, message", [
    (["predict", "b", "--top-k", "1", "f2", "--nope"], "unrecognized arguments: f2 --nope"),
    (["show", "vgg16", "extra"], "unrecognized arguments: extra"),
    (["tarin", "digits"], "unknown command 'tarin' (did you mean train?); the commands: "
                          "check, show, list, build, train"),
    (["zzzz"], "unknown command 'zzzz'; the commands: check,"),
])
def test_what_argparse_would_not_say(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(parser(), argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
