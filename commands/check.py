"""``cnnbp check``: validate a blueprint and print its totals (no TensorFlow)."""
from __future__ import annotations

import argparse
import json

from . import EXAMPLES
from .blueprint_args import add_blueprint_args, compile_args


def register(sub) -> None:
    """Add ``cnnbp check`` and its arguments to ``sub``."""
    p = sub.add_parser("check", help="validate a blueprint and print its totals",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_blueprint_args(p)
    p.add_argument("--json", action="store_true", help="print the per-layer analysis as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    """Validate the blueprint without TensorFlow and print its one-line summary (with
    ``--json``, the per-layer analysis); a bad blueprint raises BlueprintError (exit 2)."""
    from cnnbp.builder.summary import summary
    from cnnbp.builder.weights_source import with_source

    from .blueprint_args import is_resolved_copy
    compiled = compile_args(args)
    if args.expr is not None or not is_resolved_copy(args.blueprint):
        with_source(compiled, args.blueprint)  # weights.from names a file that is there (unread)
    if args.json:
        print(json.dumps(compiled.analysis.to_json(), indent=2))
    else:
        print(summary(compiled.analysis))
    return 0
