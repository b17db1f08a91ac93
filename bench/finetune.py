"""Fine-tuning from weights against training from scratch, at the same training seconds.

Nothing is downloaded, so the "pretrained" weights are made here: the same small net is first
trained on a related generated task (8 kinds of shapes, 300 images each), then a small new task
(4 *other* kinds of shapes, 40 training images each, 100 test images each) is trained three
ways, each stopped once its epochs have used BUDGET seconds:

- scratch: the blueprint's own initial weights;
- weights: ``weights.from`` the pretrained model.keras (its classifier re-initialised: 8 -> 4
  classes) and ``weights.normalize`` the pretraining's mean and std, everything trained;
- frozen: the same, plus ``freeze: features`` for 3 epochs (``unfreeze_after: 3``) and the
  head at ``head_learning_rate`` 10x ``learning_rate``.

Usage: python bench/finetune.py [BUDGET_SECONDS ...] [--repeats R]   (default: 4 16, 3 repeats)
Prints one line per run and a table of mean test accuracy per arm and budget.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnnbp.builder.tf_env import import_keras

keras = import_keras()
from cnnbp.builder import load_expression  # noqa: E402
from cnnbp.train.fit import train  # noqa: E402

SIZE = 32
NET = ("INPUT(32x32x3)-[(CONV(filters=F, kernel=3, padding=same)-RELU)*2-POOL(2, 2)]*3-"
       "GLOBAL_POOL(avg)-FC(64)-RELU-SOFTMAX")
PRETRAIN = ("circle", "square", "triangle", "plus", "ring", "hbars", "dot", "chevron")
TASK = ("ellipse", "diamond", "cross", "tee")  # shapes the pretraining never saw


def draw(kind: str, rng: np.random.Generator) -> Image.Image:
    """One 32x32 RGB picture of ``kind``: random colours, place, size and noise."""
    bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    while np.abs(bg - fg).sum() < 200:  # the shape must stand out
        fg = rng.integers(0, 256, 3)
    img = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in bg))
    d, colour = ImageDraw.Draw(img), tuple(int(v) for v in fg)
    r = int(rng.integers(7, 12))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, 2))
    w = max(2, r // 3)
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        d.ellipse(box, fill=colour)
    elif kind == "ring":
        d.ellipse(box, outline=colour, width=w)
    elif kind == "square":
        d.rectangle(box, fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif kind == "plus":
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
    elif kind == "hbars":
        for y in range(cy - r, cy + r, 2 * w):
            d.rectangle((cx - r, y, cx + r, y + w - 1), fill=colour)
    elif kind == "dot":
        d.ellipse((cx - w, cy - w, cx + w, cy + w), fill=colour)
    elif kind == "chevron":
        d.line([(cx - r, cy + r // 2), (cx, cy - r // 2), (cx + r, cy + r // 2)], fill=colour,
               width=w)
    elif kind == "ellipse":
        d.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=colour)
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    elif kind == "cross":
        d.line([(cx - r, cy - r), (cx + r, cy + r)], fill=colour, width=w)
        d.line([(cx - r, cy + r), (cx + r, cy - r)], fill=colour, width=w)
    elif kind == "tee":
        d.rectangle((cx - r, cy - r, cx + r, cy - r + 2 * w), fill=colour)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    pixels = np.asarray(img, "float32") + rng.normal(0, 12, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))


def write_folder(root: Path, kinds, train: int, test: int, seed: int) -> Path:
    """``root/train/KIND/*.png`` and ``root/test/KIND/*.png``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for kind in kinds:
            (root / split / kind).mkdir(parents=True)
            for i in range(count):
                draw(kind, rng).save(root / split / kind / f"{i}.png")
    return root


class Budget(keras.callbacks.Callback):
    """Stop training once the epochs have used ``seconds`` (counted from the first fit's start:
    a run that unfreezes fits twice)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.began = seconds, None

    def on_train_begin(self, logs=None):
        self.began = self.began or time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self.began >= self.seconds:
            self.model.stop_training = True


def net(classes: int, settings: list[str]):
    return load_expression(NET, ["F=[16, 32, 64]", f"classes={classes}", "training.epochs=500",
                                 "training.batch_size=32", "training.validation_split=0",
                                 "training.augment.translate=0", *settings])


def pixels_normalisation(run: Path) -> tuple[list, list]:
    """The pretraining's mean and std, in pixels 0..255 (what ``weights.normalize`` takes)."""
    p = json.loads((run / "preprocess.json").read_text())
    to_pixels = 255.0 * p["scale"] / p["raw_max"]
    return [m * to_pixels for m in p["mean"]], [s * to_pixels for s in p["std"]]


def main(argv: list[str]) -> None:
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 3
    args = [a for i, a in enumerate(argv) if a != "--repeats" and (
        i == 0 or argv[i - 1] != "--repeats")]
    budgets = [float(a) for a in args] or [4.0, 16.0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        source = write_folder(tmp / "shapes8", PRETRAIN, 300, 50, seed=1)
        task = write_folder(tmp / "shapes4", TASK, 40, 100, seed=2)
        print(f"generated 8x(300+50) and 4x(40+100) images in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        pre = train(net(8, ["training.epochs=12"]), str(source), tmp / "pre", quiet=True,
                    report=False)
        print(f"pretraining: {pre.epochs} epochs on 2,400 images, test accuracy "
              f"{pre.test_accuracy:.3f} (8 classes), {time.perf_counter() - began:.1f} s wall",
              flush=True)
        mean, std = pixels_normalisation(tmp / "pre")
        start = [f"weights.from={tmp / 'pre' / 'model.keras'}",
                 f"weights.normalize={{mean: {mean}, std: {std}}}"]
        arms = {"scratch": [],
                "weights": start,
                "frozen": [*start, "training.freeze=features", "training.unfreeze_after=3",
                           "training.learning_rate=0.0005",
                           "training.head_learning_rate=0.005"]}
        results: dict = {}
        for budget in budgets:
            for r in range(repeats):
                for arm, settings in arms.items():
                    out = tmp / f"{arm}-{budget:g}-{r}"
                    m = train(net(4, [*settings, f"training.seed={r}"]), str(task), out,
                              quiet=True, report=False, callbacks=[Budget(budget)])
                    results.setdefault((arm, budget), []).append(m.test_accuracy)
                    print(f"budget {budget:g} s, seed {r}, {arm:8s}: {m.epochs:3d} epochs in "
                          f"{m.train_seconds:5.1f} s, test accuracy {m.test_accuracy:.3f}",
                          flush=True)
        print("\nmean test accuracy on 4x100 test images (4 classes, 40 training images each)")
        print("budget  " + "  ".join(f"{arm:>9s}" for arm in arms))
        for budget in budgets:
            cells = [results[arm, budget] for arm in arms]
            print(f"{budget:5g} s " + "  ".join(
                f"{np.mean(c):.3f}±{np.std(c):.2f}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:])
