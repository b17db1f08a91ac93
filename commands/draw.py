"""``cnnbp draw``: the net as the lecture's volume diagram (SVG or PNG); no TensorFlow."""
from __future__ import annotations

import argparse

from .blueprint_args import add_blueprint_args

DRAW_EXAMPLES = """examples:
  cnnbp draw lenet5 -o lenet5.svg           the lecture's volume diagram
  cnnbp draw vgg16 -o vgg16.png
  cnnbp draw -e "INPUT(40x1)-CONV(16,5)-RELU-POOL-FC(10)-SOFTMAX" -o strip.svg
"""


def register(sub) -> None:
    """Add ``cnnbp draw`` and its arguments to ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    d = sub.add_parser("draw", help="draw the net as the lecture's volume diagram (SVG or PNG)",
                       epilog=DRAW_EXAMPLES, formatter_class=raw)
    add_blueprint_args(d)
    d.add_argument("-o", "--output", required=True, help="net.svg or net.png")
    d.set_defaults(run=run)


def run(args) -> int:
    """Write the volume diagram (SVG or PNG by the file's suffix); no TensorFlow or matplotlib."""
    from cnnbp.builder import load, load_expression
    from cnnbp.report.draw import write
    compiled = load_expression(args.expr, args.set) if args.expr is not None \
        else load(args.blueprint, args.set)
    path = write(compiled.analysis, args.output)
    print(f"{compiled.network.name}: wrote {path}")
    return 0
