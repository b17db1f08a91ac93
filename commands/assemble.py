"""The ``cnnbp`` parser, assembled from the command modules, and the parsing argparse does not
do by itself."""
from __future__ import annotations

import argparse
import importlib

from . import EXAMPLES, MODULES


def parser() -> argparse.ArgumentParser:
    """The ``cnnbp`` parser: each module of ``MODULES`` registers its subcommand."""
    p = argparse.ArgumentParser(prog="cnnbp", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Describe, check and build classic CNNs from "
                                            "declarative blueprints.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p.set_defaults(commands=sub.choices)  # parse() suggests one for a typo
    for name in MODULES:
        importlib.import_module(f"cnnbp.commands.{name}").register(sub)
    return p


def parse(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by ``p`` (from ``parser()``), with what argparse does not do itself:
    a mistyped command gets a did-you-mean, and files given after options join the command's
    file list. Bad arguments exit 2 with argparse's usage message.
    """
    commands = p.get_default("commands")
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is not None and word not in commands:  # argparse would only say "invalid choice"
        from cnnbp.builder.tokens import suggest
        p.error(f"unknown command {word!r}{suggest(word, commands)}; the commands: "
                f"{', '.join(commands)}")
    args, extra = p.parse_known_args(argv)
    # argparse stops filling a trailing list at the first option: `predict B --top-k 3 F`
    # leaves F over. Files after options belong to that list; anything else is an error.
    if extra and isinstance(getattr(args, "files", None), list) and \
            not any(e.startswith("-") for e in extra):
        args.files += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return args

