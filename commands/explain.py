"""``cnnbp explain``: figures of what a trained run learned."""
from __future__ import annotations

import argparse

EXPLAIN_EXAMPLES = """examples:
  cnnbp explain runs/digits                 figures for a few held-out samples
  cnnbp explain runs/digits digit.png -o figures/
  cnnbp explain runs/digits --unit stage1_pool:0,3 --channels 0,5,9
"""


def register(sub) -> None:
    """Add ``cnnbp explain`` and its arguments to ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
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
    x.set_defaults(run=run)


def run(args) -> int:
    """Draw a trained run's explain figures into a folder (loads TensorFlow)."""
    from cnnbp.contract.errors import UsageError
    from cnnbp.report.explain import write_figures
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
