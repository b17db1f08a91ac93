"""What a large net's per-epoch checkpoints cost `cnnbp train`: VGG-11 at 224x224 (129 million
weights) on a small seeded .npz, a few epochs, timed inside the process.

Usage: python bench/vgg_checkpoints.py [IMAGES] [EPOCHS]   (defaults 64 and 3)
Prints ``train()``'s wall seconds and each epoch's; the difference is mostly the checkpoints
(weights, optimizer state, best weights) and the end of the run. Run it on two commits to
compare them (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description="VGG-11 224x224: what per-epoch checkpoints cost")
    ap.add_argument("images", type=int, nargs="?", default=64, help="training images (64)")
    ap.add_argument("epochs", type=int, nargs="?", default=3, help="epochs (3)")
    args = ap.parse_args()
    images, epochs = args.images, args.epochs
    from cnnbp.builder.tf_env import import_keras
    import_keras()
    from cnnbp.builder import load
    from cnnbp.train import fit
    rng = np.random.default_rng(0)
    test = images // 2
    x = rng.integers(0, 256, (images + test, 224, 224, 3), dtype=np.uint8)
    y = np.arange(images + test) % 10
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        np.savez(f"{d}/vgg.npz", x_train=x[:images], y_train=y[:images], x_test=x[images:],
                 y_test=y[images:])
        compiled = load("vgg11", ["input=[224, 224, 3]", "classes=10", "class_names=[]",
                                  f"training.epochs={epochs}", "training.batch_size=32",
                                  "training.validation_split=0", "training.augment.translate=0"])
        began = time.perf_counter()
        metrics = fit.train(compiled, f"{d}/vgg.npz", f"{d}/r", quiet=True, report=False)
        wall = time.perf_counter() - began
        history = json.load(open(f"{d}/r/state/state.json"))["history"]
    print(json.dumps({"train_wall": round(wall, 1), "epochs": [r["seconds"] for r in history],
                      "train_seconds": metrics.train_seconds}))


if __name__ == "__main__":
    main()
