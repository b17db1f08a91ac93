"""The ``cnnbp`` subcommands, one module each (as accelerate's ``commands/``): every module has
``register(subparsers)``, which adds its parser, and ``run(args) -> int``. Logic lives in the
stage packages; a command parses, calls them, and prints what they return.

Registering stays cheap and free of TensorFlow: ``cnnbp check`` builds the whole parser too.
"""
from __future__ import annotations

import argparse
import importlib

# In the order ``cnnbp --help`` lists them
MODULES = ("check", "show", "list", "build", "train", "export", "validate", "serve", "predict",
           "search", "draw", "explain", "report")

EXAMPLES = """examples:
  cnnbp check vgg16                       shipped blueprint by name
  cnnbp check blueprints/vgg16.yaml --json
  cnnbp check mnist1d --set N=3 --set K=2 override variables
  cnnbp show alexnet                      per-layer table
  cnnbp list                              shipped blueprints, one line each
  cnnbp show vgg16 --yaml > my.yaml       a shipped blueprint to start from
  cnnbp draw lenet5 -o lenet5.svg         the lecture-style volume diagram
  cnnbp check -e "INPUT(32x32x3)-CONV(10,5x5,stride=1,pad=2)-RELU-POOL-FC(10)-SOFTMAX"
  cnnbp build digits -o model.keras
  cnnbp train digits --data digits -o runs/digits
  cnnbp train mnist1d --data mnist1d --epochs 40 -o runs/mnist1d
  cnnbp train --resume runs/digits        continue a run that was interrupted
  cnnbp export runs/digits -o bundles/digits --triton model_repository
  cnnbp validate bundles/digits
  cnnbp serve bundles/ --port 8000        every bundle under bundles/, on 127.0.0.1
  cnnbp predict bundles/digits digit.png
  cnnbp predict --url http://127.0.0.1:8000 --model digits digit.png
  cnnbp predict --url grpc://127.0.0.1:8001 --model digits digit.png
  cnnbp search search.yaml --data digits --trials 20 -o searches/digits
  cnnbp report runs/digits                rewrite the run's report.html
"""


def parser() -> argparse.ArgumentParser:
    """The ``cnnbp`` parser: each module of ``MODULES`` registers its subcommand."""
    p = argparse.ArgumentParser(prog="cnnbp", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Describe, check and build classic CNNs from "
                                            "declarative blueprints.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p.set_defaults(commands=sub.choices)  # parse() suggests one for a typo
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
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

