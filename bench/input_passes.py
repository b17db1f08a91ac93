"""Seconds per pass of the training input pipeline alone (no model), for each cache mode.

Usage: python bench/input_passes.py NET FOLDER [PASSES] [MODES...]
NET is a net expression (``INPUT(...)-...``); MODES default to ``none memory disk``. Each mode
runs in its own process: ``prepare`` (as ``cnnbp train`` does), then PASSES iterations of the
training stream, which show what filling the cache costs and what reading it back saves.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import sys, tempfile, time
from pathlib import Path
from cnnbp.builder.tf_env import import_keras
import_keras()
from cnnbp.builder import load_expression
from cnnbp.train.fit import prepare
net, folder, mode, passes = sys.argv[1:5]
with tempfile.TemporaryDirectory() as tmp:
    compiled = load_expression(net, [f"training.cache={mode}", "training.epochs=3"])
    session = prepare(compiled, folder, Path(tmp) / "run")
    times = []
    for _ in range(int(passes)):
        began = time.perf_counter()
        rows = sum(int(x.shape[0]) for x, _ in session.pipelines.train)
        times.append(time.perf_counter() - began)
    session.pipelines.close()
    print(f"| {mode} | {rows} | {', '.join(f'{t:.2f}' for t in times)} |")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description="seconds per pass of the input pipeline alone")
    ap.add_argument("net", help="a net expression, INPUT(...)-...")
    ap.add_argument("folder", help="an image folder")
    ap.add_argument("passes", type=int, nargs="?", default=3)
    ap.add_argument("modes", nargs="*", default=[], choices=["none", "memory", "disk", "auto"],
                    help="cache modes (default none memory disk)")
    args = ap.parse_args()
    net, folder, passes = args.net, args.folder, str(args.passes)
    modes = args.modes or ["none", "memory", "disk"]
    print("| cache | rows per pass | seconds per pass |\n|---|---|---|")
    for mode in modes:
        out = subprocess.run([sys.executable, "-c", CHILD, net, folder, mode, passes],
                             capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1] if out.returncode == 0 else
              f"| {mode} | failed: {out.stderr[-300:]} | |", flush=True)


if __name__ == "__main__":
    main()
