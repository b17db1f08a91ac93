"""What the commands that read a blueprint share: its arguments, and compiling it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_blueprint_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """BLUEPRINT or ``-e PATTERN`` (one of them), and repeatable ``--set KEY=VALUE``."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("blueprint", nargs="?", help="a blueprint file or a shipped name (vgg16)")
    src.add_argument("-e", "--expr", metavar="PATTERN", help="a one-line net instead of a file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a variable (N=3), a key (classes=10) or a key path "
                        "(layers.CONV.kernel=5); repeatable")


def compile_args(args):
    """The compiled blueprint the arguments name, its notes printed on stderr once: a run's
    or bundle's resolved copy had them printed when the user's own file was read."""
    from cnnbp.builder import load, load_expression
    compiled = load_expression(args.expr, args.set) if args.expr is not None else \
        load(args.blueprint, args.set)
    if args.expr is not None or not is_resolved_copy(args.blueprint):
        for note in compiled.notes:
            print(f"note: {note}", file=sys.stderr)
    return compiled


def is_resolved_copy(ref: str) -> bool:
    """Whether ``ref`` is a run's or bundle's ``blueprint.yaml`` (or the folder)."""
    path = Path(ref)
    folder = path if path.is_dir() else path.parent
    return (path.is_dir() or path.name == "blueprint.yaml") and \
        (folder / "blueprint.yaml").is_file() and (folder / "preprocess.json").is_file()
