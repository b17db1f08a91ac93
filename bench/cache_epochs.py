"""Seconds per epoch of one in-process `train()` for each `training.cache` mode, side by side.

Usage: python bench/cache_epochs.py NET FOLDER [EPOCHS] [MODES...]
NET is a net expression (``INPUT(...)-...``); MODES default to ``disk none memory``. Each mode
runs in its own process after the folder is read once (page cache), without the report.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, tempfile
from cnnbp.builder.tf_env import import_keras
import_keras()
from cnnbp.builder import load_expression
from cnnbp.train import fit
net, data, epochs, cache = sys.argv[1:5]
with tempfile.TemporaryDirectory() as d:
    compiled = load_expression(net, [f"training.epochs={epochs}", f"training.cache={cache}"])
    m = fit.train(compiled, data, d + "/r", quiet=True, report=False)
    history = json.load(open(d + "/r/state/state.json"))["history"]
    print(json.dumps({"cache": m.cache, "epochs": [r["seconds"] for r in history],
                      "train_wall": m.wall_seconds}))
"""


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.stream_folder import warm
    net, folder = sys.argv[1:3]
    epochs = sys.argv[3] if len(sys.argv) > 3 else "3"
    modes = sys.argv[4:] or ["disk", "none", "memory"]
    print("| cache | chosen | seconds per epoch | train() wall s |\n|---|---|---|---|")
    for mode in modes:
        warm(Path(folder))
        out = subprocess.run([sys.executable, "-c", CHILD, net, folder, epochs, mode],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"| {mode} | failed: {out.stderr[-300:]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {mode} | {r['cache']} | {', '.join(f'{s:.1f}' for s in r['epochs'])} | "
              f"{r['train_wall']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
