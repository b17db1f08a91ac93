"""``cnnbp report``: (re)write the report.html of a run or a bundle."""
from __future__ import annotations

import argparse

REPORT_EXAMPLES = """examples:
  cnnbp report runs/digits                  rewrite runs/digits/report.html
  cnnbp report bundles/digits
  cnnbp report runs/digits --bundle bundles/digits   include the export's parity results
"""


def register(sub) -> None:
    """Add ``cnnbp report`` and its arguments to ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    r = sub.add_parser("report", help="(re)write report.html of a run or a bundle",
                       epilog=REPORT_EXAMPLES, formatter_class=raw)
    r.add_argument("path", help="a run directory or a bundle")
    r.add_argument("--bundle", help="a bundle exported from this run: add its parity results")
    r.add_argument("--no-explain", action="store_true",
                   help="leave out the explain figures (no TensorFlow needed)")
    r.set_defaults(run=run)


def run(args) -> int:
    """Write ``report.html`` for a run (with a bundle's parity when given) or for a bundle."""
    from cnnbp.contract.errors import UsageError
    from cnnbp.report.html import is_bundle, write_bundle_report, write_run_report
    if is_bundle(args.path):
        if args.bundle:
            raise UsageError(f"--bundle goes with a run directory; {args.path} is a bundle")
        path = write_bundle_report(args.path)
    else:
        path = write_run_report(args.path, args.bundle, not args.no_explain)
    print(f"wrote {path}")
    return 0
