"""Run records → the report's charts as PNG bytes (matplotlib, no TensorFlow): training curves
with the best epoch and the learning rate, and the confusion matrix as counts and normalised."""
from __future__ import annotations

import io

GRID = 32        # training rows in the report's grid
TITLE_PT = 9     # text over a tile: at 100 dpi about 12 px, readable when the page scales it
LABEL_PT = 10    # a row's label left of its tiles


def subplots(rows: int = 1, cols: int = 1, **kwargs):
    """A matplotlib ``Figure`` and its Axes, made without pyplot: nothing is registered in
    pyplot's global state, so figures can be drawn on a thread while training's work goes on
    (``train.fit`` draws the explain figures beside the test evaluation). Saved through Agg."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(rows, cols, **kwargs)


def mosaic(tiles: list, cols: int, titles: list[str] | None = None,
           row_labels: list[str] | None = None, color: str = "#000", size: float = 1.3):
    """A figure of same-size RGB tiles (HxWx3 in 0..1) drawn as one image, with a title over
    each tile and a label left of each row: one Axes instead of one per tile, which was most
    of a report's drawing time (subplots, tight_layout and savefig each scale with Axes)."""
    import numpy as np
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    gap_x, gap_y = max(1, w // 8), max(1, h // 8) + (h // 4 if titles else 0)
    # uint8, not float: a grid of 224x224 photos is tens of MB, and matplotlib copies it
    canvas = np.full((rows * (h + gap_y), cols * (w + gap_x) - gap_x, 3), 255, "uint8")
    corners = []
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = r * (h + gap_y) + gap_y, c * (w + gap_x)
        canvas[y:y + h, x:x + w] = np.rint(np.clip(tile, 0, 1) * 255)
        corners.append((y, x))
    fig, ax = subplots(figsize=(cols * size, rows * size + 0.2))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for (y, x), title in zip(corners, titles or []):
        ax.text(x + w / 2, y - 0.5, title, ha="center", va="bottom", fontsize=TITLE_PT,
                color=color)
    for r, label in enumerate(row_labels or []):
        ax.text(-gap_x, r * (h + gap_y) + gap_y + h / 2, label, ha="right", va="center",
                fontsize=LABEL_PT)
    return fig


def tidy(fig) -> None:
    """``tight_layout``, without its warning when a grid of small tiles leaves no room to
    adjust (the figure is still drawn, as laid out)."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        fig.tight_layout()


def png(fig, tight: bool = False) -> bytes:
    """The figure as PNG bytes; ``tight`` grows the canvas to every label (where
    ``tight_layout`` could not make room, e.g. long rotated class names)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None},
                **({"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}))
    return buf.getvalue()


def denormalised(x, prep):
    """Normalised rows → what they were before the run's normalisation, in 0..1 for display:
    images as raw / raw_max (so a dark image stays dark), other inputs scaled per row."""
    import numpy as np
    raw = (x * np.float32(prep.std) + np.float32(prep.mean)) * np.float32(prep.scale)
    if prep.takes_images:
        return np.clip(raw / np.float32(prep.raw_max), 0, 1)
    lo = raw.min(axis=tuple(range(1, raw.ndim)), keepdims=True)
    span = raw.max(axis=tuple(range(1, raw.ndim)), keepdims=True) - lo
    return (raw - lo) / np.where(span > 0, span, 1)


def training_grid(x, prep, cols: int = 8) -> bytes:
    """Normalised training rows as the images (or curves, for 1-D inputs) they came from."""
    import numpy as np
    shown = denormalised(x, prep)
    if shown.ndim == 3:  # 1-D rows: one small plot each, every channel
        rows = -(-len(shown) // cols)
        fig, axes = subplots(rows, cols, figsize=(cols * 1.3, rows * 0.9), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, row in zip(axes.flat, shown):
            ax.plot(row, lw=0.8)
        tidy(fig)
        return png(fig)
    tiles = [t if t.shape[-1] == 3 else np.repeat(t[..., :1], 3, axis=-1) for t in shown]
    fig = mosaic(tiles, min(cols, len(tiles)), size=1.0)
    tidy(fig)
    return png(fig)


def best_epoch(history: list[dict]) -> int | None:
    """The epoch with the lowest validation loss (training loss when there is no validation).

    >>> best_epoch([{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.3},
    ...             {"epoch": 3, "val_loss": 0.4}])
    2
    """
    key = "val_loss" if history and "val_loss" in history[0] else "loss"
    rows = [r for r in history if key in r]
    return min(rows, key=lambda r: r[key])["epoch"] if rows else None


def curves(history: list[dict]) -> bytes:
    """Loss, accuracy and learning rate per epoch; the best epoch marked on each."""
    from matplotlib.ticker import MaxNLocator
    epochs = [r["epoch"] for r in history]
    best = best_epoch(history)
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    for ax, key in zip(axes, ("loss", "accuracy", "learning_rate")):
        if key in history[0]:
            ax.plot(epochs, [r[key] for r in history], marker="o", label="train"
                    if key != "learning_rate" else "learning rate")
        if f"val_{key}" in history[0]:
            ax.plot(epochs, [r[f"val_{key}"] for r in history], marker="o", label="validation")
        if best is not None:
            ax.axvline(best, color="#cc0000", linestyle="--", label=f"best epoch ({best})")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("epoch")
        if len(epochs) <= 12:  # one tick per epoch (a single epoch got ticks at 0.945...)
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    tidy(fig)
    return png(fig)


def confusion(matrix: list[list[int]], names: list[str]) -> bytes:
    """Counts and row-normalised (recall per true class) side by side."""
    import numpy as np
    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(names)
    side = max(4.0, 0.45 * k + 2)
    fig, axes = subplots(1, 2, figsize=(2 * side, side))
    for ax, values, title, fmt in ((axes[0], cm, "counts", "{:.0f}"),
                                   (axes[1], norm, "normalised by true class", "{:.2f}")):
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        if k <= 30:  # beyond that the numbers are unreadable; the colours still tell
            top = values.max() or 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                            fontsize=TITLE_PT if k <= 12 else 7,
                            color="white" if values[i, j] > top / 2 else "black")
    tidy(fig)
    return png(fig, tight=True)
