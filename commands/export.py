"""``cnnbp export``: a run (or ``.keras`` file) to a validated ONNX bundle, optionally with a
Triton model repository and a KServe InferenceService."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import EXAMPLES


def register(sub) -> None:
    """Add ``cnnbp export`` and its arguments to ``sub``."""
    x = sub.add_parser("export", help="export to ONNX, validate against Keras, write a bundle",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    x.add_argument("source", help="a run directory or a .keras file")
    x.add_argument("-o", "--output", required=True, help="the bundle directory to write")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: ONNX Runtime "
                                                         "and TensorRT both take it)")
    x.add_argument("--max-batch", type=int, default=64, help="largest batch validated and "
                                                             "configured for Triton (default 64)")
    x.add_argument("--atol", type=float, default=1e-5, help="parity bar (default 1e-5)")
    x.add_argument("--no-variants", action="store_true", help="skip optimized/fp16/int8")
    x.add_argument("--triton", metavar="REPO", help="also write a Triton model repository")
    x.add_argument("--triton-kind", choices=["cpu", "gpu"], default="cpu")
    x.add_argument("--kserve", metavar="FILE", help="also write a KServe InferenceService "
                                                    "(YAML) for the Triton repository")
    x.add_argument("--force", action="store_true",
                   help="when -o (or the Triton model folder) holds files an export did not "
                        "write, move them aside to NAME.replaced-<time> instead of refusing")
    x.add_argument("--quiet", action="store_true",
                   help="no line per phase on stderr (convert, parity, variants, write)")
    x.set_defaults(run=run)


def phases(quiet: bool):
    """A ``phase(what)`` that prints one line on stderr per phase of a long command, with the
    seconds since it started (a terminal and a CI log alike: there are few)."""
    started = time.perf_counter()

    def phase(what: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {what}", file=sys.stderr, flush=True)
    return phase


def run(args) -> int:
    """Export, validate and write the bundle (and the Triton repository and KServe manifest when
    asked), then print the parity report; wrong paths and targets are refused before TensorFlow
    starts."""
    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.export.source import locate_source
    locate_source(args.source)  # a wrong path is refused before TensorFlow's start-up
    if args.triton:  # config.pbtxt and the manifest hold the name unescaped
        from cnnbp.export.triton import check_model_name
        check_model_name(Path(args.output).resolve().name)
    if args.kserve:
        from cnnbp.contract.errors import UsageError
        from cnnbp.export.kserve import check_target
        if not args.triton:
            raise UsageError("--kserve writes an InferenceService for the Triton repository: "
                             "add --triton REPO")
        check_target(args.kserve)
    phase = phases(args.quiet)
    phase(f"loading {args.source} (TensorFlow starts first)")
    import_tensorflow()
    from cnnbp.export import destination
    from cnnbp.export.bundle import export_bundle
    if args.triton:  # refuse a bad Triton target before the export's work, not after
        destination.prepare(Path(args.triton) / Path(args.output).resolve().name,
                            [args.source, args.output], args.force, "Triton model",
                            destination.is_triton_model, "--triton")
    exported = export_bundle(args.source, args.output, args.opset, args.max_batch, args.atol,
                             not args.no_variants, args.force, phase)
    report = exported.report
    if exported.moved_aside:
        print(f"{args.output}: its previous contents were moved to {exported.moved_aside}")
    print(f"{args.output}: {report}")
    if args.triton:
        from cnnbp.export.triton import write_repository
        name = Path(args.output).resolve().name
        keep = destination.prepare(Path(args.triton) / name, [args.source, args.output],
                                   args.force, "Triton model", destination.is_triton_model,
                                   "--triton")
        folder = write_repository(Path(args.triton), name, Path(args.output),
                                  report.input_shape, report.classes, args.max_batch,
                                  f"KIND_{args.triton_kind.upper()}", keep)
        print(f"  Triton model repository: {folder}")
        if args.kserve:
            from cnnbp.export.kserve import write_manifest
            write_manifest(args.kserve, name, folder, args.triton_kind == "gpu")
            print(f"  KServe InferenceService: {args.kserve} (set its storageUri to where "
                  f"{args.triton} is uploaded)")
    return 0
