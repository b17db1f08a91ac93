"""The run directory: what a trained run leaves behind, each file written atomically.

    model.keras      the trained model (best weights when early stopping restored them)
    best.keras       the checkpoint with the lowest validation loss
    blueprint.yaml   the resolved blueprint, every override applied
    preprocess.json  input normalization, shape and class names needed at inference
    labels.txt       class names, one a line
    history.csv      one row an epoch
    metrics.json     test loss/accuracy, per-class precision/recall, confusion matrix, speed
    curves.png, confusion.png
    state/           what --resume needs: epoch-N.npz (weights, optimizer, best weights) and
                     state.json, which names it and is written last
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from builder.atomic import atomic_path, write_json, write_text

STATE = "state"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def state_file(self) -> Path:
        return self.path / STATE / "state.json"

    def exists(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def write_blueprint(self, resolved: dict) -> None:
        from ruamel.yaml import YAML
        buf = io.StringIO()
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = None
        yaml.dump(resolved, buf)
        write_text(self / "blueprint.yaml", buf.getvalue())

    def write_labels(self, names) -> None:
        write_text(self / "labels.txt", "".join(f"{n}\n" for n in names))

    def write_history(self, rows: list[dict]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self / "history.csv", buf.getvalue())

    def read_state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def write_state(self, state: dict) -> None:
        write_json(self.state_file, state)

    def save_model(self, model, name: str) -> None:
        with atomic_path(self.path / name, suffix=".keras") as tmp:
            model.save(tmp)


def write_plots(run: RunDir, history: list[dict], confusion, class_names) -> None:
    """Training curves and the confusion matrix as PNGs."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [r[key] for r in history], marker="o", label="train")
        if history and f"val_{key}" in history[0]:
            ax.plot(epochs, [r[f"val_{key}"] for r in history], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save_png(fig, run / "curves.png")

    cm = np.asarray(confusion)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title("confusion matrix (test set)")
    fig.tight_layout()
    _save_png(fig, run / "confusion.png")
    plt.close("all")


def _save_png(fig, target: Path) -> None:
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
