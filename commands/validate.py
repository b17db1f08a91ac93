"""``cnnbp validate``: re-run a bundle's checks."""
from __future__ import annotations


def register(sub) -> None:
    v = sub.add_parser("validate", help="re-run a bundle's checks")
    v.add_argument("bundle")
    v.add_argument("--atol", type=float, help="override the bundle's parity bar")
    v.set_defaults(run=run)


def run(args) -> int:
    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.contract.bundle import Bundle
    Bundle(args.bundle)  # a folder that is no bundle is refused before TensorFlow's start-up
    import_tensorflow()
    from cnnbp.export.validate import validate_bundle
    report = validate_bundle(args.bundle, args.atol)
    tv = report["test_vectors"]
    print(f"{args.bundle}: test vectors max |diff| {tv['max_abs']:.2g}"
          + (f"; parity vs source model max |diff| {report['parity']['max_abs']:.2g}, top-1 "
             f"agreement {report['parity']['top1_agreement']:.4f}, source weights "
             f"{'unchanged' if report['source_unchanged'] else 'CHANGED'}"
             if report["parity"] else f"; {report['note']}")
          + (f"; pixels.onnx max |diff| {report['pixels']['max_abs']:.2g}"
             if report["pixels"] else "; no pixels.onnx (a bundle from before it existed)")
          + f" — {'passed' if report['passed'] else 'FAILED'}")
    return 0 if report["passed"] else 1
