"""The ``cnnbp`` command: a thin layer over the packages (``python cli.py ...`` works too)."""
from __future__ import annotations

import argparse
import json
import sys


def _checkout_as_package() -> None:
    """``python cli.py`` from a checkout that pip has not installed: import this folder as the
    ``cnnbp`` package, so the code reads the same either way."""
    import importlib.util
    from pathlib import Path
    if importlib.util.find_spec("cnnbp") is None:
        here = Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location("cnnbp", here / "__init__.py",
                                                      submodule_search_locations=[str(here)])
        sys.modules["cnnbp"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["cnnbp"])


if __name__ == "__main__":
    _checkout_as_package()

EXAMPLES = """examples:
  cnnbp check vgg16                       shipped blueprint by name
  cnnbp check blueprints/vgg16.yaml --json
  cnnbp check mnist1d --set N=3 --set K=2 override variables
  cnnbp show alexnet                      per-layer table
  cnnbp list                              shipped blueprints, one line each
  cnnbp show vgg16 --yaml > my.yaml       a shipped blueprint to start from
  cnnbp draw lenet5 -o lenet5.svg         the lecture-style volume diagram
  cnnbp check -e "INPUT(32x32x3)-CONV(10,5x5,stride=1,pad=2)-RELU-POOL-FC(10)-SOFTMAX"
  cnnbp build digits -o model.keras
  cnnbp train digits --data digits -o runs/digits
  cnnbp train mnist1d --data mnist1d --epochs 40 -o runs/mnist1d
  cnnbp train --resume runs/digits        continue a run that was interrupted
  cnnbp export runs/digits -o bundles/digits --triton model_repository
  cnnbp validate bundles/digits
  cnnbp serve bundles/ --port 8000        every bundle under bundles/, on 127.0.0.1
  cnnbp predict bundles/digits digit.png
  cnnbp predict --url http://127.0.0.1:8000 --model digits digit.png
  cnnbp predict --url grpc://127.0.0.1:8001 --model digits digit.png
  cnnbp search search.yaml --data digits --trials 20 -o searches/digits
  cnnbp report runs/digits                rewrite the run's report.html
"""


def _blueprint_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("blueprint", nargs="?", help="a blueprint file or a shipped name (vgg16)")
    src.add_argument("-e", "--expr", metavar="PATTERN", help="a one-line net instead of a file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a variable (N=3), a key (classes=10) or a key path "
                        "(layers.CONV.kernel=5); repeatable")


def _compile(args):
    from cnnbp.builder import load, load_expression
    compiled = load_expression(args.expr, args.set) if args.expr is not None else \
        load(args.blueprint, args.set)
    if args.expr is not None or not _resolved_copy(args.blueprint):
        for note in compiled.notes:
            print(f"note: {note}", file=sys.stderr)
    return compiled


def _resolved_copy(ref: str) -> bool:
    """Whether ``ref`` is a run's or bundle's ``blueprint.yaml`` (or the folder): its notes
    were shown when the user's own blueprint was read, so they are not repeated."""
    from pathlib import Path
    path = Path(ref)
    folder = path if path.is_dir() else path.parent
    return (path.is_dir() or path.name == "blueprint.yaml") and \
        (folder / "blueprint.yaml").is_file() and (folder / "preprocess.json").is_file()


def run_check(args) -> int:
    from cnnbp.builder.report import summary
    compiled = _compile(args)
    if args.json:
        print(json.dumps(compiled.analysis.to_json(), indent=2))
    else:
        print(summary(compiled.analysis))
    return 0


def run_show(args) -> int:
    from cnnbp.builder.report import summary, table
    if args.yaml:  # a file to start from: the blueprint as written, comments included
        from cnnbp.builder.source import resolve_path
        from cnnbp.contract.errors import UsageError
        if args.expr:
            raise UsageError("show --yaml prints a blueprint file; -e has none")
        print(resolve_path(args.blueprint).read_text(encoding="utf-8"), end="")
        return 0
    compiled = _compile(args)
    print(table(compiled.analysis))
    print(summary(compiled.analysis))
    return 0


def run_list(args) -> int:
    from cnnbp.builder import load
    from cnnbp.builder.report import human
    from cnnbp.builder.source import SHIPPED
    for path in sorted(SHIPPED.glob("*.yaml")):
        compiled = load(str(path))
        a, about = compiled.analysis, str(compiled.resolved.get("description") or "")
        print(f"{path.stem:<16} {a.total_params:>12,} params {human(a.total_macs):>7} MACs  "
              f"{about.splitlines()[0] if about else ''}")
    print("start from one: cnnbp show NAME --yaml > my.yaml")
    return 0


def run_build(args) -> int:
    from cnnbp.builder.errors import check_keras_path
    compiled = _compile(args)
    check_keras_path(args.output)  # before TensorFlow's start-up
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    from cnnbp.builder.keras_builder import build_model, save_model
    model = build_model(compiled.network)
    save_model(model, args.output)
    print(f"{compiled.network.name}: wrote {args.output} ({model.count_params():,} params)")
    return 0


def run_train(args) -> int:
    from cnnbp.builder.tf_env import import_keras
    from cnnbp.contract.errors import UsageError
    from cnnbp.train.fit import resume, train
    if args.resume:
        given = [flag for flag, value in (("BLUEPRINT", args.blueprint), ("-e", args.expr),
                                          ("--set", args.set), ("--data", args.data),
                                          ("-o", args.output), ("--batch-size", args.batch_size),
                                          ("--force", args.force), ("--cache", args.cache),
                                          ("--skip-bad-images", args.skip_bad_images),
                                          ("--tensorboard", args.tensorboard),
                                          ("--resize", args.resize)) if value]
        if given:  # never silently ignored
            raise UsageError(f"--resume continues {args.resume} as it was set up: "
                             f"{', '.join(given)} cannot change it (only --epochs can); start "
                             "a new run with -o to train differently")
        import_keras()
        metrics = resume(args.resume, quiet=args.quiet, epochs=args.epochs)
    else:
        if (args.blueprint is None and args.expr is None) or args.data is None or args.output is None:
            raise UsageError("train needs BLUEPRINT (or -e), --data and -o, or --resume RUN")
        overrides = list(args.set)
        if args.epochs is not None:
            overrides.append(f"training.epochs={args.epochs}")
        if args.batch_size is not None:
            overrides.append(f"training.batch_size={args.batch_size}")
        if args.skip_bad_images:
            overrides.append("training.skip_bad_images=true")
        if args.tensorboard:
            overrides.append("training.tensorboard=true")
        if args.cache is not None:
            overrides.append(f"training.cache={args.cache}")
        if args.resize is not None:
            overrides.append(f"training.resize={args.resize}")
        args.set = overrides
        compiled = _compile(args)
        from cnnbp.train.multiworker import cluster, train_multiworker
        if cluster():  # TF_CONFIG names several workers
            metrics = train_multiworker(compiled, args.data, args.output, quiet=args.quiet)
        else:
            from cnnbp.contract.rundir import RunDir, check_new
            check_new(RunDir(args.output), args.force)  # before TensorFlow's start-up
            from cnnbp.train.sources import preload
            net = compiled.network  # so are the data's problems that need no TensorFlow
            preload(args.data, net.input_shape, net.classes, net.class_names)
            import_keras()
            metrics = train(compiled, args.data, args.output, quiet=args.quiet,
                            replace=args.force)
    print(f"{metrics.blueprint}: test accuracy {metrics.test_accuracy:.4f}, "
          f"loss {metrics.test_loss:.4f} after {metrics.epochs} epochs, "
          f"{metrics.images_per_second} images/s on {metrics.device} -> {metrics.run_dir}")
    if metrics.skipped_images:
        print(f"  skipped {metrics.skipped_images:,} images that could not be decoded "
              f"(--skip-bad-images); their names: skipped_files in {metrics.run_dir}/metrics.json")
    return 0


def run_export(args) -> int:
    from pathlib import Path

    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.export.bundle import locate_source
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
    phase = _phases(args.quiet)
    phase(f"loading {args.source} (TensorFlow starts first)")
    import_tensorflow()
    from cnnbp.export import destination
    from cnnbp.export.bundle import export_bundle
    if args.triton:  # refuse a bad Triton target before the export's work, not after
        destination.check(Path(args.triton) / Path(args.output).resolve().name,
                          [args.source, args.output], args.force, "Triton model",
                          destination.is_triton_model, "--triton")
    exported = export_bundle(args.source, args.output, args.opset, args.max_batch, args.atol,
                             not args.no_variants, args.force, phase)
    report = exported.report
    if exported.moved_aside:
        print(f"{args.output}: its previous contents were moved to {exported.moved_aside}")
    print(f"{args.output}: ONNX opset {report.opset}, max |diff| vs Keras "
          f"{report.max_abs:.2g} (bar {report.atol:g}), top-1 agreement "
          f"{report.top1_agreement:.4f} over {len(report.cases)} checks")
    if report.pixels:
        print(f"  pixels.onnx (raw {report.pixels.input_dtype} input): max |diff| vs Keras "
              f"{report.pixels.max_abs:.2g}, top-1 agreement {report.pixels.top1_agreement:.4f}")
    for name, v in report.variants.items():
        extra = f", accuracy change {v.accuracy_change_points:+.2f} points" \
            if v.accuracy_change_points is not None else ""
        if v.note:  # measured against training's resize, not held to a bar
            extra += f", top-1 agreement {v.top1_agreement:.4f} on sample photos"
        state = "kept" if v.kept else f"dropped ({v.error or 'failed its bar'})"
        print(f"  variant {name}: {state}" + (f", max |diff| {v.max_abs:.2g}{extra}"
                                             if v.max_abs is not None else ""))
    if args.triton:
        from cnnbp.export.triton import write_repository
        name = Path(args.output).resolve().name
        keep = destination.check(Path(args.triton) / name, [args.source, args.output],
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


def _phases(quiet: bool):
    """A ``phase(what)`` that prints one line on stderr per phase of a long command, with the
    seconds since it started (a terminal and a CI log alike: there are few)."""
    import time
    started = time.perf_counter()

    def phase(what: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {what}", file=sys.stderr, flush=True)
    return phase


def run_validate(args) -> int:
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


def run_serve(args) -> int:
    import os
    from cnnbp.serve.runner import serve
    serve(args.path, args.host, args.port, args.max_batch, args.max_delay_ms, args.max_body,
          args.token or os.environ.get("CNNBP_TOKEN"), max_batch_rows=args.max_batch_rows,
          max_image_pixels=args.max_image_pixels, max_header_bytes=args.max_header_bytes,
          timeout_header=args.timeout_header, timeout_body=args.timeout_body,
          timeout_keep_alive=args.timeout_keep_alive, max_connections=args.max_connections,
          grpc_port=None if args.no_grpc else args.grpc_port, access_log=not args.no_access_log)
    return 0


def run_predict(args) -> int:
    import os
    from cnnbp.contract.errors import UsageError
    from cnnbp.serve.client import predict_local, predict_remote
    failed: list[str] = []  # a file that cannot be classified does not stop the others
    if args.top_k < 1:
        raise UsageError(f"predict: --top-k must be 1 or more (the classes to print for each "
                         f"file, best first), got {args.top_k}")
    if args.url:
        if not args.model:
            raise UsageError("predict: --url needs --model NAME (the model's name on the server)")
        results = predict_remote(args.url, args.model, [args.bundle] + args.files, args.top_k,
                                 args.token or os.environ.get("CNNBP_TOKEN"), failed)
    else:
        if not args.files:
            raise UsageError(f"predict: no files to classify: give images or signals after the "
                             f"bundle, e.g. cnnbp predict {args.bundle} digit.png")
        results = predict_local(args.bundle, args.files, args.top_k, failed)
    for r in results:
        if args.json:  # one object a line, probabilities at full precision
            print(json.dumps({"file": r["file"], "top_k": r["top_k"]}))
        else:
            print(f"{r['file']}: " + ", ".join(f"{t['label']} ({t['probability']:.3f})"
                                               for t in r["top_k"]))
    for problem in failed:  # after the answers: one line each, and bad input's exit code
        print(f"error: {problem}", file=sys.stderr)
    return 2 if failed else 0


# Commands that live beside their package's code: each module's ``register(subparsers)`` adds
# them. Registering stays cheap and free of TensorFlow: ``check`` builds this parser too.
COMMAND_MODULES = ("cnnbp.search.command", "cnnbp.report.command")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnbp", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Describe, check and build classic CNNs from "
                                            "declarative blueprints.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p.set_defaults(commands=sub.choices)  # filled below; main() suggests one for a typo
    c = sub.add_parser("check", help="validate a blueprint and print its totals",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _blueprint_args(c)
    c.add_argument("--json", action="store_true", help="print the per-layer analysis as JSON")
    c.set_defaults(run=run_check)
    s = sub.add_parser("show", help="print the per-layer table (a blueprint, run or bundle)")
    _blueprint_args(s)
    s.add_argument("--yaml", action="store_true", help="print the blueprint's YAML instead")
    s.set_defaults(run=run_show)
    ls = sub.add_parser("list", help="the shipped blueprints, one line each")
    ls.set_defaults(run=run_list)
    b = sub.add_parser("build", help="build the Keras model and save it")
    _blueprint_args(b)
    b.add_argument("-o", "--output", required=True, help="where to write the .keras file")
    b.set_defaults(run=run_build)
    t = sub.add_parser("train", help="train with Keras fit into a run directory",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("blueprint", nargs="?", help="a blueprint file or a shipped name")
    t.add_argument("-e", "--expr", metavar="PATTERN", help="a one-line net instead of a file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--data", help="digits, mnist1d, mnist, fashion_mnist, cifar10 (online), "
                                  "a .npz file (or a folder of .npy files), TFRecord shards "
                                  "('shards/*.tfrecord') or an image folder")
    t.add_argument("--epochs", type=int, help="shorthand for --set training.epochs=N")
    t.add_argument("--batch-size", type=int, help="shorthand for --set training.batch_size=N")
    t.add_argument("-o", "--output", help="the run directory to create")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run (with --epochs: "
                                                   "extend a finished one)")
    t.add_argument("--force", action="store_true",
                   help="replace an earlier run at -o (as export --force replaces a bundle)")
    t.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files to RUN/tensorboard (training.tensorboard)")
    t.add_argument("--skip-bad-images", action="store_true",
                   help="skip images that cannot be decoded and count them in metrics.json "
                        "(training.skip_bad_images)")
    t.add_argument("--cache", choices=["auto", "memory", "disk", "none"],
                   help="where decoded images are kept between epochs (training.cache; "
                        "default auto)")
    t.add_argument("--resize", choices=["stretch", "center_crop", "letterbox"],
                   help="how images are fitted to the input, in training and in serving "
                        "(training.resize; default stretch)")
    t.add_argument("--quiet", action="store_true",
                   help="no progress: no data summary, no bar within epochs (drawn on a "
                        "terminal), no line per epoch, no line for the test; the result only")
    t.set_defaults(run=run_train)
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
    x.set_defaults(run=run_export)
    v = sub.add_parser("validate", help="re-run a bundle's checks")
    v.add_argument("bundle")
    v.add_argument("--atol", type=float, help="override the bundle's parity bar")
    v.set_defaults(run=run_validate)
    sv = sub.add_parser("serve", help="serve bundles over HTTP and gRPC (Open Inference Protocol)",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sv.add_argument("path", help="a bundle, a folder of bundles, or a Triton model repository")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    sv.add_argument("--grpc-port", type=int, default=8001,
                    help="gRPC port, same host and token as HTTP (default 8001)")
    sv.add_argument("--no-grpc", action="store_true", help="serve HTTP only")
    sv.add_argument("--no-access-log", action="store_true",
                    help="no log line per request (logger cnnbp.serve.access)")
    sv.add_argument("--max-batch", type=int, default=64, help="dynamic batching: rows per call")
    sv.add_argument("--max-delay-ms", type=float, default=2.0,
                    help="dynamic batching: longest wait for a batch to fill (0 = off)")
    sv.add_argument("--max-body", type=int, default=16 << 20, help="request size limit in bytes")
    sv.add_argument("--token", help="require Authorization: Bearer TOKEN (or CNNBP_TOKEN)")
    sv.add_argument("--max-batch-rows", type=int, help="rows one infer request may carry "
                    "(default: --max-batch); more get 413")
    sv.add_argument("--max-image-pixels", type=int, default=25_000_000,
                    help="classify: larger images get 413 (default 25,000,000)")
    sv.add_argument("--max-header-bytes", type=int, default=64 << 10,
                    help="request line and headers; more get 431 (default 65536)")
    sv.add_argument("--timeout-header", type=float, default=10.0,
                    help="seconds for a request head to arrive, else 408 (default 10)")
    sv.add_argument("--timeout-body", type=float, default=30.0,
                    help="seconds for a request body to arrive, else 408 (default 30)")
    sv.add_argument("--timeout-keep-alive", type=float, default=5.0,
                    help="seconds an idle connection stays open (default 5)")
    sv.add_argument("--max-connections", type=int, default=1000,
                    help="open connections; more get 503 (default 1000)")
    sv.set_defaults(run=run_serve)
    pr = sub.add_parser("predict", help="classify images or signals, locally or via a server")
    pr.add_argument("bundle", help="a bundle (local), or the first file with --url")
    pr.add_argument("files", nargs="*", help="PNG/JPEG images, or .npy/.json 1-D signals")
    pr.add_argument("--url", help="a running `cnnbp serve`: http://HOST:PORT or grpc://HOST:PORT")
    pr.add_argument("--model", help="the model's name on the server")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true",
                    help="one JSON object per file: {file, top_k: [{label, index, probability}]}, "
                         "probabilities at full precision")
    pr.add_argument("--token")
    pr.set_defaults(run=run_predict)
    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in cnnbp, not in what the user gave it
PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for `cat` stopped by `| head`


def _pipe_closed() -> int:
    """The reader of stdout went away (``cnnbp show vgg16 | head -2``): stop without a word,
    as Unix tools do, with the status a shell gives one that SIGPIPE stopped. (Python ignores
    SIGPIPE so that a server survives a client hanging up; the write fails instead.) What is
    still buffered goes to /dev/null, so the interpreter's own flush at exit cannot fail."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no file descriptor (a test's capture)
        pass
    return PIPE_CLOSED


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every problem the user can act on prints one paragraph and exits with
    its kind's code (2: bad input, 1: refused or failed); only a bug in cnnbp exits 70, and
    shows its traceback only with CNNBP_DEBUG=1."""
    import os
    from cnnbp.contract.errors import CnnbpError
    p = parser()
    argv = sys.argv[1:] if argv is None else argv
    word = next((a for a in argv if not a.startswith("-")), None)
    commands = p.get_default("commands")
    if word is not None and word not in commands:  # argparse would only say "invalid choice"
        from cnnbp.builder.tokens import suggest
        p.error(f"unknown command {word!r}{suggest(word, commands)}; the commands: "
                f"{', '.join(commands)}")
    args, extra = p.parse_known_args(argv)
    # argparse stops filling a trailing list at the first option: `predict B --top-k 3 F`
    # leaves F over. Files after options belong to that list; anything else is an error.
    if extra and isinstance(getattr(args, "files", None), list) and \
            not any(e.startswith("-") for e in extra):
        args.files += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except CnnbpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return _pipe_closed()
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # a checkout run before its dependencies were installed
        print(f"error: cnnbp needs the Python package {exc.name!r}, which is not installed: run "
              "`make demo` (or `pip install -e .`) first", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("CNNBP_DEBUG"):
            raise
        print(f"error: internal error in cnnbp {args.command} ({type(exc).__name__}: {exc}); "
              "this is a bug — rerun with CNNBP_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return INTERNAL_ERROR


def run() -> None:
    """The ``cnnbp`` console script: ``main``, then, after a success, an exit without the
    interpreter's teardown.

    Every file a command writes is closed when it returns; what is left is Python freeing
    TensorFlow's modules and objects one by one, which took 1.7 s after a `cnnbp train`
    against 0.1 s without (docs/benchmarks.md). The atexit handlers still run (logging,
    temporary folders' finalizers); threads still running are not waited for. A failed
    command exits the usual way, so whatever it left open is closed as Python would.
    """
    import atexit
    import os
    code = main()
    if code:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # a closed pipe (`| head`) that the last lines met
            code = PIPE_CLOSED
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
