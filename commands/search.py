"""``cnnbp search``: search a blueprint's family for the best net within budgets. Importing
this module stays cheap (no TensorFlow, no Optuna): ``cnnbp check`` builds the same parser."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnbp search digits_search.yaml --data digits --trials 20 -o searches/digits
  cnnbp search digits_search.yaml --data digits --trials 20 -o searches/digits   (resumes)
  cnnbp search bp.yaml --data digits --trials 30 --objective accuracy,macs -o searches/front
  cnnbp search bp.yaml --data digits --trials 10 --search-set 'M=[1, 3]' \\
      --search-set max_params=50000 -o searches/small
  cnnbp search bp.yaml --data digits --trials 40 -o searches/shared \\
      --storage postgresql://user@db/cnnbp       (run the same line on several machines)
  cnnbp search bp.yaml --data digits --trials 40 -o searches/shared \\
      --storage journal:/shared/search.log       (a file on a shared filesystem: no server)
  cnnbp search --refresh searches/shared      (rewrite the outputs from the study, any time)
  cnnbp search mnist1d_search --data mnist1d --trials 60 --final-epochs 60 -o searches/m1d
      (retrain the winner on training + validation data into searches/m1d/final)
then: cnnbp train searches/digits/best.yaml --data digits -o runs/best
"""


def register(subparsers) -> None:
    """Add ``cnnbp search`` and its flags to ``subparsers``."""
    p = subparsers.add_parser(
        "search", help="search the blueprint's family for the best net within budgets",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sample nets from the blueprint's `search:` section, exclude impossible "
                    "or over-budget ones statically (they never reach TensorFlow), train the "
                    "rest as run directories under OUT/trials/, and write results.csv, "
                    "best.yaml, history.png and pareto.png to OUT.")
    p.add_argument("blueprint", nargs="?",
                   help="a blueprint file (or shipped name) with a search: section")
    p.add_argument("--data", help="the data source, as for `cnnbp train` (required)")
    p.add_argument("--trials", type=int, metavar="N",
                   help="(required) trials to train in the whole study, every worker's counted "
                        "(excluded and repeated candidates do not count); a resumed search "
                        "trains only what is missing")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="(required) the search folder (searches/NAME); rerun to resume")
    p.add_argument("--refresh", metavar="OUT",
                   help="rewrite OUT's results.csv, best.yaml, history.png and pareto.png "
                        "from its study (all workers' trials so far) and exit")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop starting trials after this long")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a blueprint key or variable, as for `cnnbp train`")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a search: key (max_params=50000, objective=accuracy,macs) or "
                        "a space entry ('N=[1, 3]', 'FC.units=[64, 128, 256]'); repeatable")
    p.add_argument("--objective", choices=["accuracy", "accuracy,macs", "accuracy,latency"],
                   metavar="OBJ", help="accuracy (default), accuracy,macs or accuracy,latency "
                   "(a Pareto front); shorthand for --search-set objective=...")
    p.add_argument("--epochs", type=int, help="epochs per trial at most (--set "
                   "training.epochs=N); the pruner stops most trials sooner (search.pruner, "
                   "search.min_epochs)")
    p.add_argument("--final-epochs", type=int, metavar="N",
                   help="when the search ends, retrain the best trial's net on training + "
                        "validation data for N epochs into OUT/final (a full run directory) "
                        "and report its test accuracy")
    p.add_argument("--keep", action="store_true",
                   help="train every trial as a full run directory (checkpoints, models, "
                        "charts), as `cnnbp train` does; by default a trial keeps its "
                        "blueprint, history and result, and its model only if it could win")
    p.add_argument("--storage", metavar="URL", help="where several workers share the study: "
                   "an Optuna RDB URL (postgresql://…) or journal:PATH (a file on a shared "
                   "filesystem); default sqlite in OUT/study.db")
    p.add_argument("--study-name", default="search", help="the study's name in --storage")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress: no bar on a terminal, no line per trial elsewhere")
    p.set_defaults(run=run)


def run(args) -> int:
    """Search (or resume) into ``--output``, print the summary and the best trial."""
    import logging
    from pathlib import Path

    from cnnbp.contract.errors import UsageError
    from cnnbp.search.load import load
    if args.refresh:
        return refresh(Path(args.refresh))
    missing = [flag for flag, value in (("BLUEPRINT", args.blueprint), ("--data", args.data),
                                        ("--trials", args.trials), ("-o", args.output))
               if value is None]
    if missing:
        raise UsageError(f"cnnbp search needs {', '.join(missing)}: e.g. cnnbp search "
                         "digits_search --data digits --trials 20 -o searches/digits "
                         "(or --refresh OUT alone to rewrite a search's outputs)")
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if args.final_epochs is not None and args.final_epochs < 1:
        raise UsageError(f"--final-epochs must be >= 1, got {args.final_epochs}")
    overrides = list(args.set) + ([f"training.epochs={args.epochs}"] if args.epochs else [])
    search_sets = list(args.search_set) + ([f"objective={args.objective}"]
                                           if args.objective else [])
    doc, space = load(args.blueprint, overrides, search_sets)
    import sys

    from cnnbp.search.space_text import describe
    if not args.quiet:  # on stderr, with the progress: stdout keeps the summary alone
        sys.stderr.write("search space, as read:\n" + "".join(f"  {line}\n"
                                                              for line in describe(space)))

    import optuna

    from cnnbp.search import outputs
    from cnnbp.search import study as studies
    from cnnbp.search.progress import Progress
    from cnnbp.search.settings import Settings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("cnnbp").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes, one per trial
    out = Path(args.output)
    settings = Settings(args.data, out, args.trials, args.timeout, args.storage,
                        args.study_name, args.seed, quiet=True, keep=args.keep,
                        final_epochs=args.final_epochs)
    progress = Progress(args.trials, args.timeout, quiet=args.quiet)
    try:
        study = studies.run(space, doc, settings, on_trial=progress)
    finally:
        progress.close()
    if args.final_epochs:
        from cnnbp.search.final import retrain
        from cnnbp.search.locks import claim_lock
        from cnnbp.search.storage import storage_url
        say = (lambda line: None) if args.quiet else \
            (lambda line: sys.stderr.write(line + "\n"))
        with claim_lock(storage_url(settings)) as lock:
            retrain(study, out, args.data, args.final_epochs, lock, say=say)
    top = outputs.write_all(study, out, space.objectives)
    print(outputs.summary(outputs.rows(study), top, final=outputs.final_record(study, top)))
    if top is not None:
        print(f"{out}: results.csv, history.png, pareto.png; best.yaml is trial {top.number} "
              f"(validation accuracy {top.accuracy:.4f}) — "
              f"`cnnbp train {out / 'best.yaml'} --data {args.data} -o runs/NAME`")
    return 0


def refresh(out) -> int:
    """Rewrite OUT's outputs from the study its ``search.json`` names; print the summary."""
    from cnnbp.search import outputs
    from cnnbp.search.opening import load_study
    study, objectives = load_study(out)
    top = outputs.write_all(study, out, objectives)
    print(outputs.summary(outputs.rows(study), top, final=outputs.final_record(study, top)))
    print(f"{out}: results.csv, history.png, pareto.png" + (", best.yaml" if top else "")
          + f" rewritten from the study ({len(study.trials)} trials)")
    return 0
