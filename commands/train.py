"""``cnnbp train``: train a blueprint with Keras ``fit`` into a run directory, or resume one."""
from __future__ import annotations

import argparse

from . import EXAMPLES
from .blueprint_args import compile_args

# Flags that are shorthands for a blueprint key: (attribute, key, value when given)
SHORTHANDS = (("epochs", "training.epochs", None), ("batch_size", "training.batch_size", None),
              ("skip_bad_images", "training.skip_bad_images", "true"),
              ("tensorboard", "training.tensorboard", "true"), ("cache", "training.cache", None),
              ("resize", "training.resize", None))
# What a resumed run keeps as it was set up (only --epochs may extend it): flag, attribute
FIXED_ON_RESUME = (("BLUEPRINT", "blueprint"), ("-e", "expr"), ("--set", "set"),
                   ("--data", "data"), ("-o", "output"), ("--batch-size", "batch_size"),
                   ("--force", "force"), ("--cache", "cache"),
                   ("--skip-bad-images", "skip_bad_images"), ("--tensorboard", "tensorboard"),
                   ("--resize", "resize"), ("--weights", "weights"))


def register(sub) -> None:
    """Add ``cnnbp train`` and its flags to the CLI's subcommands."""
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
    t.add_argument("--weights", metavar="PATH",
                   help="start from the weights in a .keras, .weights.h5, .h5 or .onnx file "
                        "(weights.from; a resumed run keeps its own)")
    t.add_argument("--quiet", action="store_true",
                   help="no progress: no data summary, no bar within epochs (drawn on a "
                        "terminal), no line per epoch, no line for the test; the result only")
    t.set_defaults(run=run)


def overrides(args) -> list[str]:
    """``--set`` with the shorthand flags added as the keys they stand for."""
    given = [(key, value, getattr(args, attr)) for attr, key, value in SHORTHANDS]
    extra = [f"{key}={value or flag}" for key, value, flag in given
             if flag is not None and flag is not False]  # 0 is a value (refused later)
    return list(args.set) + extra


def run(args) -> int:
    """Train a new run or resume one (``train.launch``), then print its result."""
    from cnnbp.contract.errors import UsageError
    from cnnbp.train.launch import launch, relaunch
    if args.resume:
        given = [flag for flag, attr in FIXED_ON_RESUME if getattr(args, attr)]
        if given:  # never silently ignored
            raise UsageError(f"--resume continues {args.resume} as it was set up: "
                             f"{', '.join(given)} cannot change it (only --epochs can); start "
                             "a new run with -o to train differently")
        metrics = relaunch(args.resume, quiet=args.quiet, epochs=args.epochs)
    else:
        if args.blueprint is None and args.expr is None or None in (args.data, args.output):
            raise UsageError("train needs BLUEPRINT (or -e), --data and -o, or --resume RUN")
        args.set = overrides(args)
        from cnnbp.builder.weights import match
        from cnnbp.builder.weights_source import with_source
        compiled = with_source(compile_args(args), args.blueprint, args.weights)
        plan = match(compiled)  # weights that do not fit are refused before a run folder
        if plan is not None:    # is made; a resumed run never reads them again
            print(plan.line(), flush=True)
        metrics = launch(compiled, args.data, args.output, quiet=args.quiet,
                         replace=args.force)
    print(summary_line(metrics))
    if metrics.skipped_images:
        print(f"  skipped {metrics.skipped_images:,} images that could not be decoded "
              f"(--skip-bad-images); their names: skipped_files in {metrics.run_dir}/metrics.json")
    return 0


def summary_line(metrics) -> str:
    """The line a finished run ends with: test figures, speed, device and, when it was not
    float32, the precision it trained in."""
    return (f"{metrics.blueprint}: test accuracy {metrics.test_accuracy:.4f}, "
            f"loss {metrics.test_loss:.4f} after {metrics.epochs} epochs, "
            f"{metrics.images_per_second} images/s"
            + (f" ({metrics.steady_images_per_second} after the first epoch)"
               if metrics.steady_images_per_second else "")
            + f" on {metrics.device}"
            + (f" in {metrics.precision}" if metrics.precision not in (None, "float32") else "")
            + f" -> {metrics.run_dir}")
