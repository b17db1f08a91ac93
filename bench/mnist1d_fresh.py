"""Judge MNIST-1D nets on a fresh draw of MNIST-1D instead of its test set (issue 26).

400 validation signals rank nets too coarsely, and choosing a search space by the 1,000 test
signals spends the test set. `mnist1d.make_dataset` with another seed draws new signals from
the same templates and transformations: this script writes an .npz whose training rows are
the standard 4,000 and whose test rows are a fresh draw (5,000 by default), then trains a
blueprint on it once per `training.seed` and per variant, and prints each run's accuracy on
the fresh rows with the variants' means (one standard error at 98.5 % on 5,000 signals is
about 0.17 points).

Usage: python bench/mnist1d_fresh.py BLUEPRINT [--variant NAME KEY=VALUE ...]...
       [--seeds 0,1,2] [--draw-seed 7] [--work DIR]
e.g.   python bench/mnist1d_fresh.py best.yaml --variant f48 'layers.CONV.filters=[48]'
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def fresh_npz(path: Path, draw_seed: int) -> Path:
    """The standard training signals (as `--data mnist1d` has them), and a draw with
    ``draw_seed`` as the test rows."""
    from mnist1d.data import get_dataset_args, make_dataset

    from cnnbp.train.builtin import mnist1d
    standard = mnist1d()
    args = get_dataset_args()
    if draw_seed == args.seed:
        raise SystemExit(f"--draw-seed {draw_seed} is the standard set's own seed; pick another")
    args.seed = draw_seed
    fresh = make_dataset(args)
    x = np.concatenate([fresh["x"], fresh["x_test"]])
    y = np.concatenate([fresh["y"], fresh["y_test"]])
    column = lambda a: a.astype("float32")[..., None]
    np.savez(path, x_train=standard.x_train, y_train=standard.y_train, x_test=column(x),
             y_test=y.astype("int64"))
    return path


def train(blueprint: str, npz: Path, run: Path, seed: int, sets: list[str]) -> float:
    """One `cnnbp train`; its accuracy on the fresh rows."""
    cmd = [sys.executable, str(ROOT / "cli.py"), "train", blueprint, "--data", str(npz),
           "-o", str(run), "--force", "--quiet", "--set", f"training.seed={seed}",
           *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return float(json.loads((run / "metrics.json").read_text())["test_accuracy"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("blueprint")
    p.add_argument("--variant", nargs="+", action="append", default=[],
                   metavar=("NAME", "KEY=VALUE"), help="a named variant: its --set values")
    p.add_argument("--seeds", default="0,1,2", help="training.seed values, comma-separated")
    p.add_argument("--draw-seed", type=int, default=7)
    p.add_argument("--work", default="mnist1d_fresh", help="runs and the .npz go here")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    npz = fresh_npz(work / f"fresh-{args.draw_seed}.npz", args.draw_seed)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [("as written", [])] + [(v[0], v[1:]) for v in args.variant]
    print(f"| {Path(args.blueprint).name} | accuracy on the fresh draw (training.seed "
          f"{', '.join(map(str, seeds))}) | mean |\n|---|---|---:|")
    for name, sets in variants:
        found = [train(args.blueprint, npz, work / f"{name.replace(' ', '_')}-{s}", s, sets)
                 for s in seeds]
        print(f"| {name} | {', '.join(f'{a:.4f}' for a in found)} | "
              f"{statistics.mean(found):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
