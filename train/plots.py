"""The run directory's pictures: training curves and the confusion matrix."""
from __future__ import annotations

from pathlib import Path

from cnnbp.contract.atomic import atomic_path
from cnnbp.contract.rundir import RunDir


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
