"""``cnnbp show``: the per-layer table of a blueprint, run or bundle, or the blueprint's YAML."""
from __future__ import annotations

from .blueprint_args import add_blueprint_args, compile_args


def register(sub) -> None:
    """Add ``cnnbp show`` and its arguments to ``sub``."""
    p = sub.add_parser("show", help="print the per-layer table (a blueprint, run or bundle)")
    add_blueprint_args(p)
    p.add_argument("--yaml", action="store_true", help="print the blueprint's YAML instead")
    p.set_defaults(run=run)


def run(args) -> int:
    """Print the per-layer table (shapes, parameters, MACs, receptive fields) and the summary,
    or with ``--yaml`` the blueprint itself; no TensorFlow."""
    from cnnbp.builder.summary import summary, table
    if args.yaml:  # a file to start from: the blueprint as written, comments included
        from cnnbp.builder.source import resolve_path
        from cnnbp.contract.errors import UsageError
        if args.expr:
            raise UsageError("show --yaml prints a blueprint file; -e has none")
        print(resolve_path(args.blueprint).read_text(encoding="utf-8"), end="")
        return 0
    compiled = compile_args(args)
    print(table(compiled.analysis))
    print(summary(compiled.analysis))
    return 0
