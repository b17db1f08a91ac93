"""``cnnbp validate``: re-run a bundle's checks."""
from __future__ import annotations


def register(sub) -> None:
    """Add ``cnnbp validate`` and its arguments to ``sub``."""
    v = sub.add_parser("validate", help="re-run a bundle's checks")
    v.add_argument("bundle")
    v.add_argument("--atol", type=float, help="override the bundle's parity bar")
    v.set_defaults(run=run)


def run(args) -> int:
    """Re-run a bundle's checks and print the result; 0 when every check passed, 1 otherwise."""
    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.contract.bundle import Bundle
    Bundle(args.bundle)  # a folder that is no bundle is refused before TensorFlow's start-up
    import_tensorflow()
    from cnnbp.export.validate import validate_bundle
    found = validate_bundle(args.bundle, args.atol)
    print(f"{args.bundle}: {found}")
    return 0 if found.passed else 1
