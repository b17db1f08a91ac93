"""A trained run → figures of what it learned, as PNG bytes (loads TensorFlow and matplotlib).

First-layer filters; every stage's activation maps; Grad-CAM on the last conv stage; receptive
fields of each stage's centre unit drawn on the input (from the analyzer's RF and jump); the
held-out rows that most excite channels of the last stage; misclassified held-out rows.
1-D nets get the 1-D analogues (curves, spans and heat strips).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract.atomic import atomic_path
from cnnbp.contract.errors import UsageError

from . import receptive
from .figures import LABEL_PT, TITLE_PT, mosaic, png, subplots, tidy
from .probe import Context, held_out, last_conv_output, load, outputs, stage_outputs

CHANNELS = 8      # channels shown per stage
MISTAKES = 24


@dataclass(frozen=True)
class Figure:
    """One explain figure: its file slug, title, caption and PNG bytes."""

    slug: str
    title: str
    caption: str
    png: bytes


# -- the figures ---------------------------------------------------------------------------------
def filters(ctx: Context) -> Figure:
    """The first convolution's filters as small images (or curves for 1-D nets)."""
    first = next(layer for layer in ctx.analysis.network.layers if isinstance(layer, ir.Conv))
    w = ctx.model.get_layer(first.name).get_weights()[0]  # (k..., in/groups, filters)
    n = min(w.shape[-1], 64)
    cols = min(n, 8)
    if ctx.one_d:
        rows = -(-n // cols)
        fig, axes = subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.plot(w[:, 0, i], color="#1f4e79")
                ax.axhline(0, color="#999", lw=0.5)
    else:
        tiles = []
        for i in range(n):
            f = w[..., i] if w.shape[-2] == 3 else np.repeat(w[..., :1, i], 3, axis=-1)
            tiles.append((f - f.min()) / (np.ptp(f) or 1))  # each scaled to its own range
        fig = mosaic(tiles, cols, size=1.2)
    fig.suptitle(f"{first.name}: {n} of {w.shape[-1]} filters")
    tidy(fig)
    return Figure("filters", "first-layer filters", f"{first.name}'s kernels"
                  + ("" if ctx.one_d or w.shape[-2] == 3 else ", first input channel")
                  + ", each scaled to its own range.", png(fig))


def activations(ctx: Context, index: int) -> Figure:
    """Each stage's feature maps for input ``index``: what the net keeps at each depth."""
    names = stage_outputs(ctx.analysis)
    maps = outputs(ctx, names, ctx.x[index:index + 1])
    if ctx.one_d:
        fig = _activation_plots(ctx, index, names, maps)
    else:  # one image: the input, then each channel upscaled to the input's tile size
        shown = _rgb(ctx, ctx.x[index])
        tiles = []
        for m in maps:
            tiles.append(shown)
            for c in range(CHANNELS):
                tiles.append(_heat(m[0, ..., c], shown.shape[:2]) if c < m.shape[-1]
                             else np.ones_like(shown))
        titles = [title for m in maps for title in
                  ["input"] + [f"ch {c}" if c < m.shape[-1] else "" for c in range(CHANNELS)]]
        fig = mosaic(tiles, CHANNELS + 1, titles, names, size=1.2)
    fig.suptitle(f"activation maps of every stage: {ctx.names[index]}", fontsize=LABEL_PT)
    tidy(fig)
    return Figure(f"activations-{index}", f"activations: {ctx.names[index]}",
                  f"the first {CHANNELS} channels of each stage's output ({', '.join(names)}).",
                  png(fig))


def _heat(a: np.ndarray, size) -> np.ndarray:
    """One channel's map, scaled to its own range, in viridis, repeated up to ``size``
    (nearest neighbour, as the grid of Axes drew it)."""
    from matplotlib import colormaps
    rows = np.arange(size[0]) * a.shape[0] // size[0]
    cols = np.arange(size[1]) * a.shape[1] // size[1]
    span = np.ptp(a)
    scaled = (a - a.min()) / span if span else np.zeros_like(a)
    return colormaps["viridis"](scaled[np.ix_(rows, cols)])[..., :3]


def _activation_plots(ctx: Context, index: int, names, maps):
    """A 1-D net's activations: one Axes per stage and channel."""
    fig, axes = subplots(len(names), CHANNELS + 1,
                         figsize=((CHANNELS + 1) * 1.2, len(names) * 1.3), squeeze=False)
    for row, (name, m) in enumerate(zip(names, maps)):
        _show_input(ctx, axes[row, 0], ctx.x[index])
        axes[row, 0].set_ylabel(name, fontsize=TITLE_PT)
        for c in range(CHANNELS):
            ax = axes[row, c + 1]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < m.shape[-1]:
                ax.imshow(m[0, ..., c][None], cmap="viridis", aspect="auto",
                          interpolation="nearest")
                ax.set_title(f"ch {c}", fontsize=TITLE_PT)
            else:
                ax.axis("off")
    return fig


def blank_reason(maps: np.ndarray, grads: np.ndarray, cam: np.ndarray, layer: str) -> str | None:
    """Why one input's Grad-CAM has no heat map (all zero), or None when it has one.

    >>> blank_reason(np.zeros((2, 2, 3)), np.ones((2, 2, 3)), np.zeros((2, 2)), "c")
    "c's output is all zero for this input (every unit at or below its ReLU): nothing to weight"
    """
    if cam.max() > 0:
        return None
    if not np.any(maps):
        return (f"{layer}'s output is all zero for this input (every unit at or below its "
                "ReLU): nothing to weight")
    if not np.any(grads):
        return (f"the predicted class's score has no gradient at {layer} (the softmax is "
                "saturated): every channel weighs 0")
    return (f"the gradient-weighted channels of {layer} sum below 0 everywhere: no position "
            "adds evidence for the predicted class")


def grad_cam(ctx: Context) -> tuple[np.ndarray, np.ndarray, str, list[str | None]]:
    """(heatmaps resized to the input, predicted classes, layer, why each blank map is blank)
    for ``ctx.x``."""
    import keras
    import tensorflow as tf
    layer = last_conv_output(ctx.analysis)
    probe = keras.Model(ctx.model.input, [ctx.model.get_layer(layer).output, ctx.model.output])
    x = tf.constant(ctx.x)
    with tf.GradientTape() as tape:
        maps, probs = probe(x, training=False)
        predicted = tf.argmax(probs, axis=-1)
        score = tf.math.log(tf.gather(probs, predicted, batch_dims=1) + 1e-12)
    grads = tape.gradient(score, maps).numpy()
    maps = maps.numpy()
    spatial = tuple(range(1, maps.ndim - 1))
    weights = grads.mean(axis=spatial, keepdims=True)  # one weight per channel (Selvaraju et al.)
    cam = np.maximum((weights * maps).sum(axis=-1), 0)
    blank = [blank_reason(maps[i], grads[i], cam[i], layer) for i in range(len(cam))]
    size = tuple(ctx.prep.input_shape[:-1])
    resized = tf.image.resize(cam[..., None] if not ctx.one_d else cam[:, :, None, None],
                              size if not ctx.one_d else (size[0], 1)).numpy()
    heat = resized[..., 0] if not ctx.one_d else resized[..., 0, 0]
    top = heat.reshape(len(heat), -1).max(axis=1).reshape((-1,) + (1,) * len(size))
    return heat / np.where(top > 0, top, 1), predicted.numpy(), layer, blank


def grad_cam_figure(ctx: Context) -> Figure:
    """Grad-CAM heat maps over the inputs: where the predicted class's evidence lies."""
    import textwrap
    heat, predicted, layer, blank = grad_cam(ctx)
    n = len(ctx.x)
    fig, axes = subplots(1, n, figsize=(n * 2.2, 2.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        _show_input(ctx, ax, ctx.x[i])
        if blank[i]:  # say so on the picture, over the bare input: no overlay looks like a bug
            ax.text(0.5, 0.5, "no heat map:\n" + textwrap.fill(blank[i], 28),
                    transform=ax.transAxes, ha="center", va="center", fontsize=TITLE_PT - 1,
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#b00"})
        elif ctx.one_d:
            ax.imshow(heat[i][None], cmap="jet", alpha=0.35, aspect="auto",
                      extent=(-0.5, len(heat[i]) - 0.5, *ax.get_ylim()))
        else:
            ax.imshow(heat[i], cmap="jet", alpha=0.45, interpolation="bilinear")
        ax.set_title(f"{ctx.names[i]}\n→ {ctx.prep.class_names[predicted[i]]}",
                     fontsize=TITLE_PT)
    tidy(fig)
    reasons = sorted({r for r in blank if r})
    missing = (f" {sum(map(bool, blank))} of {n} inputs have no heat map: "
               + "; ".join(reasons) + ".") if reasons else ""
    return Figure("grad-cam", "Grad-CAM", f"where the evidence for the predicted class lies, "
                  f"from the gradients at {layer} (Selvaraju et al. 2017).{missing}", png(fig))


def parse_unit(analysis, text: str) -> tuple[str, tuple[int, ...]]:
    """``stage2_pool`` (its centre unit) or ``stage2_pool:3,1`` → (layer, unit)."""
    name, _, where = text.partition(":")
    stats = {s.name: s for s in analysis.layers if len(s.output_shape) > 1}
    if name not in stats:
        raise UsageError(f"--unit {text}: {name!r} is not a layer with a spatial output; "
                         f"pick one of {', '.join(stats)}")
    shape = stats[name].output_shape[:-1]
    try:
        unit = tuple(int(v) for v in where.split(",")) if where else receptive.centre(
            stats[name].output_shape)
    except ValueError:
        unit = ()
    if len(unit) != len(shape) or not all(0 <= u < n for u, n in zip(unit, shape)):
        raise UsageError(f"--unit {text}: give {len(shape)} index(es) within {name}'s output "
                         f"{'x'.join(map(str, shape))}, e.g. {name}:"
                         f"{','.join(str(n // 2) for n in shape)}")
    return name, unit


def receptive_fields(ctx: Context, chosen: str | None = None) -> Figure:
    """The region of the input one unit of each stage (or of ``chosen``) sees, from the analyzer's
    arithmetic."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle
    fig, ax = subplots(figsize=(4.5, 4.5) if not ctx.one_d else (8, 3))
    _show_input(ctx, ax, ctx.x[0])
    colors = colormaps["tab10"]
    stats = {s.name: s for s in ctx.analysis.layers}
    units = [parse_unit(ctx.analysis, chosen)] if chosen else [
        (name, receptive.centre(stats[name].output_shape)) for name in stage_outputs(ctx.analysis)]
    for k, (name, unit) in enumerate(units):
        span = receptive.field(ctx.analysis, name, unit)
        label = f"{name} unit {unit}: RF {stats[name].receptive_field[0]}, jump " \
                f"{stats[name].jump[0]}"
        if ctx.one_d:
            (a, b), = span
            ax.axvspan(a - 0.5, b - 0.5, ymin=0.05 * k, ymax=1 - 0.05 * k, fill=False,
                       edgecolor=colors(k), lw=2, label=label)
        else:
            (r0, r1), (c0, c1) = span
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                   edgecolor=colors(k), lw=2, label=label))
    ax.legend(fontsize=TITLE_PT, loc="upper center", bbox_to_anchor=(0.5, -0.05))
    tidy(fig)
    who = "the chosen unit" if chosen else "the centre unit of each stage"
    return Figure("receptive-fields", "receptive fields", f"the input positions {who} sees "
                  "(clipped to the input), from the analyzer's receptive field and jump.",
                  png(fig))


def top_activating(ctx: Context, channels: list[int] | None = None,
                   top: int = 5) -> Figure | None:
    """The held-out rows that excite each of a few last-stage channels most; None without held-out
    rows."""
    if ctx.x_test is None:
        return None
    name = stage_outputs(ctx.analysis)[-1]
    m = held_out(ctx)[0]
    strength = m.reshape(len(m), -1, m.shape[-1]).max(axis=1)  # (rows, channels)
    channels = channels or list(range(min(6, m.shape[-1])))
    bad = [c for c in channels if not 0 <= c < m.shape[-1]]
    if bad:
        raise UsageError(f"--channels {','.join(map(str, bad))}: {name} has channels 0 to "
                         f"{m.shape[-1] - 1}")
    ranked = [(c, i) for c in channels
              for i in np.argsort(-strength[:, c], kind="stable")[:top]]
    titles = [f"{strength[i, c]:.2g}" for c, i in ranked]
    if ctx.one_d:
        fig, axes = subplots(len(channels), top, figsize=(top * 1.3, len(channels) * 1.3),
                             squeeze=False)
        for ax, (_c, i), title in zip(axes.flat, ranked, titles):
            _show_input(ctx, ax, ctx.x_test[i])
            ax.set_title(title, fontsize=TITLE_PT)
        for row, c in enumerate(channels):
            axes[row, 0].set_ylabel(f"ch {c}", fontsize=TITLE_PT)
    else:
        fig = mosaic([_rgb(ctx, ctx.x_test[i]) for _, i in ranked], top, titles,
                     [f"ch {c}" for c in channels])
    tidy(fig)
    return Figure("top-activating", "inputs that most excite the last stage",
                  f"per row, the {top} held-out rows with the highest activation of one "
                  f"channel of {name}.", png(fig))


def misclassified(ctx: Context) -> Figure | None:
    """Held-out rows the net gets wrong, with the true and predicted classes; None without held-out
    rows."""
    if ctx.x_test is None:
        return None
    predicted = held_out(ctx)[1].argmax(axis=1)
    wrong = np.flatnonzero(predicted != ctx.y_test)[:MISTAKES]
    cols = 8
    names = ctx.prep.class_names
    titles = [f"{names[ctx.y_test[i]]} → {names[predicted[i]]}" for i in wrong]
    if len(wrong) and not ctx.one_d:
        fig = mosaic([_rgb(ctx, ctx.x_test[i]) for i in wrong], cols, titles, color="#b00",
                     size=1.4)
    else:
        rows = max(1, -(-len(wrong) // cols))
        fig, axes = subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, i, title in zip(axes.flat, wrong, titles):
            ax.axis("on")
            _show_input(ctx, ax, ctx.x_test[i])
            ax.set_title(title, fontsize=TITLE_PT, color="#b00")
        if not len(wrong):
            axes[0, 0].text(0, 0.5, "no mistakes among the held-out rows", fontsize=LABEL_PT)
    tidy(fig)
    total = int((predicted != ctx.y_test).sum())
    return Figure("misclassified", "misclassified held-out rows",
                  f"{total} of {len(ctx.y_test)} held-out rows are wrong; the first "
                  f"{len(wrong)} shown as true → predicted.", png(fig))


def _rgb(ctx: Context, x: np.ndarray) -> np.ndarray:
    """A 2-D input as shown (0..1), gray repeated to RGB, for a ``mosaic`` tile."""
    shown = ctx.display(x)
    return shown if shown.shape[-1] == 3 else np.repeat(shown[..., :1], 3, axis=-1)


def _show_input(ctx: Context, ax, x: np.ndarray) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    shown = ctx.display(x)
    if ctx.one_d:
        ax.plot(shown[:, 0], color="#222")
        ax.set_xlim(-0.5, len(shown) - 0.5)
    elif shown.shape[-1] == 3:
        ax.imshow(shown, interpolation="nearest")
    else:
        ax.imshow(shown[..., 0], cmap="gray", interpolation="nearest")


def figures(run_path, images=(), samples: int = 4, channels: list[int] | None = None,
            unit: str | None = None) -> list[Figure]:
    """Every explain figure for ``run_path``, in the report's order. ``channels``: of the last
    stage, for the top-activating rows; ``unit``: ``LAYER[:I,J]`` whose field to draw."""
    ctx = load(run_path, images, samples)
    convs = any(isinstance(layer, ir.Conv) for layer in ctx.analysis.network.layers)
    spatial = bool(stage_outputs(ctx.analysis))  # a net of FC layers only has no maps to show
    found = [filters(ctx) if convs else None,
             *(activations(ctx, i) for i in range(min(len(ctx.x), 2) if spatial else 0)),
             grad_cam_figure(ctx) if convs else None,
             receptive_fields(ctx, unit) if spatial else None,
             top_activating(ctx, channels) if spatial else None, misclassified(ctx)]
    return [f for f in found if f is not None]


def write_figures(run_path, images=(), output=None, samples: int = 4,
                  channels: list[int] | None = None, unit: str | None = None) -> list[Path]:
    """Write each figure as ``NN-slug.png`` under ``output`` (default ``RUN/explain``)."""
    made = figures(run_path, images, samples, channels, unit)  # before any folder is made
    folder = Path(output) if output else Path(run_path) / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, f in enumerate(made, 1):
        path = folder / f"{i:02d}-{f.slug}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(f.png)
        written.append(path)
    return written
