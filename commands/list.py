"""``cnnbp list``: the shipped blueprints, one line each."""
from __future__ import annotations


def register(sub) -> None:
    """Add ``cnnbp list`` to ``sub``."""
    p = sub.add_parser("list", help="the shipped blueprints, one line each")
    p.set_defaults(run=run)


def run(args) -> int:
    """Print each shipped blueprint with its parameters and MACs; no TensorFlow."""
    from cnnbp.builder import load
    from cnnbp.builder.source import SHIPPED
    from cnnbp.builder.summary import human
    for path in sorted(SHIPPED.glob("*.yaml")):
        compiled = load(str(path))
        a, about = compiled.analysis, str(compiled.resolved.get("description") or "")
        print(f"{path.stem:<16} {a.total_params:>12,} params {human(a.total_macs):>7} MACs  "
              f"{about.splitlines()[0] if about else ''}")
    print("start from one: cnnbp show NAME --yaml > my.yaml")
    return 0
