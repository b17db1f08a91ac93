"""The ``draw``, ``explain`` and ``report`` commands. Registering imports nothing heavy:
``draw`` stays free of TensorFlow and matplotlib; ``explain`` and ``report`` load them when run."""
from __future__ import annotations

import argparse

DRAW_EXAMPLES = """examples:
  cnnbp draw lenet5 -o lenet5.svg           the lecture's volume diagram
  cnnbp draw vgg16 -o vgg16.png
  cnnbp draw -e "INPUT(40x1)-CONV(16,5)-RELU-POOL-FC(10)-SOFTMAX" -o strip.svg
"""
EXPLAIN_EXAMPLES = """examples:
  cnnbp explain runs/digits                 figures for a few held-out samples
  cnnbp explain runs/digits digit.png -o figures/
  cnnbp explain runs/digits --unit stage1_pool:0,3 --channels 0,5,9
"""
REPORT_EXAMPLES = """examples:
  cnnbp report runs/digits                  rewrite runs/digits/report.html
  cnnbp report bundles/digits
  cnnbp report runs/digits --bundle bundles/digits   include the export's parity results
"""


def run_draw(args) -> int:
    from cnnbp.builder import load, load_expression
    from cnnbp.builder.draw import write
    compiled = load_expression(args.expr, args.set) if args.expr is not None \
        else load(args.blueprint, args.set)
    path = write(compiled.analysis, args.output)
    print(f"{compiled.network.name}: wrote {path}")
    return 0


def run_explain(args) -> int:
    from .explain import write_figures
    from cnnbp.contract.errors import UsageError
    try:
        channels = [int(c) for c in args.channels.split(",")] if args.channels else None
    except ValueError:
        raise UsageError(f"--channels {args.channels}: give channel numbers such as 0,3,5") \
            from None
    written = write_figures(args.run_dir, args.images, args.output, args.samples, channels,
                            args.unit)
    for path in written:
        print(path)
    return 0


def run_report(args) -> int:
    from cnnbp.contract.errors import UsageError

    from .html import is_bundle, write_bundle_report, write_run_report
    if is_bundle(args.path):
        if args.bundle:
            raise UsageError(f"--bundle goes with a run directory; {args.path} is a bundle")
        path = write_bundle_report(args.path)
    else:
        path = write_run_report(args.path, args.bundle, not args.no_explain)
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    """Add ``draw``, ``explain`` and ``report`` to the ``cnnbp`` subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    d = sub.add_parser("draw", help="draw the net as the lecture's volume diagram (SVG or PNG)",
                       epilog=DRAW_EXAMPLES, formatter_class=raw)
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("blueprint", nargs="?", help="a blueprint file or a shipped name (vgg16)")
    src.add_argument("-e", "--expr", metavar="PATTERN", help="a one-line net instead of a file")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a variable, a key or a key path; repeatable")
    d.add_argument("-o", "--output", required=True, help="net.svg or net.png")
    d.set_defaults(run=run_draw)

    x = sub.add_parser("explain", help="figures of what a trained run learned (filters, "
                                       "activations, Grad-CAM, receptive fields, mistakes)",
                       epilog=EXPLAIN_EXAMPLES, formatter_class=raw)
    x.add_argument("run_dir", metavar="RUN", help="a run directory")
    x.add_argument("images", nargs="*", help="PNG/JPEG images (or .npy signals for 1-D nets); "
                                             "default: held-out samples from the run")
    x.add_argument("-o", "--output", help="folder for the PNGs (default: RUN/explain)")
    x.add_argument("--samples", type=int, default=4,
                   help="held-out samples to show when no images are given (default 4)")
    x.add_argument("--channels", metavar="C,C,...",
                   help="channels of the last stage whose most exciting held-out rows to show "
                        "(default: the first 6)")
    x.add_argument("--unit", metavar="LAYER[:I,J]",
                   help="draw this unit's receptive field (default: each stage's centre unit)")
    x.set_defaults(run=run_explain)

    r = sub.add_parser("report", help="(re)write report.html of a run or a bundle",
                       epilog=REPORT_EXAMPLES, formatter_class=raw)
    r.add_argument("path", help="a run directory or a bundle")
    r.add_argument("--bundle", help="a bundle exported from this run: add its parity results")
    r.add_argument("--no-explain", action="store_true",
                   help="leave out the explain figures (no TensorFlow needed)")
    r.set_defaults(run=run_report)
