"""Batched random augmentation of the training stream (never part of the exported model):
TensorFlow ops for tf.data, NumPy for the array batches of other Keras backends.

Every draw is a pure function of a key: the tf.data path is given one per batch, made of the
run's seed, the epoch and the batch's place in it (``clock.EpochClock``), and the array
path a generator seeded the same way. Nothing carries over from one batch to the next, so a
resumed run augments its epochs as the same run never interrupted did.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnbp.builder import ir

# One stream of draws per kind, so turning one kind on leaves the others' draws alone.
FLIP, SHIFT_Y, SHIFT_X, ANGLE, CONTRAST, BRIGHTNESS = range(6)


@dataclass(frozen=True)
class _Plan:
    one_d: bool           # a 1-D signal, moved as a 1-pixel-high image
    h: int
    w: int
    shift_y: float        # largest shift, in pixels
    shift_x: float
    nearest: bool         # crops move whole pixels
    angle: float          # largest rotation, in radians
    flips: tuple[int, ...]


def _plan(aug: ir.Augment, input_shape: tuple[int, ...]) -> _Plan:
    one_d = len(input_shape) == 2
    h, w = (1, input_shape[0]) if one_d else input_shape[:2]
    fy = max(aug.translate, aug.crop / h) if h > 1 and (aug.crop or aug.translate) else 0.0
    fx = max(aug.translate, aug.crop / w) if aug.crop or aug.translate else 0.0
    flips = {"horizontal": (2,), "vertical": (1,), "both": (1, 2)}.get(aug.flip, ())
    return _Plan(one_d, h, w, fy * h, fx * w, bool(aug.crop), np.deg2rad(aug.rotate), flips)


def _translation(xp, dx, dy):
    """Projective transforms (``ImageProjectiveTransformV3``'s 8 numbers a row) that move each
    image by (dx, dy) pixels; ``xp`` is ``tf`` or ``np``."""
    zero, one = xp.zeros_like(dx), xp.ones_like(dx)
    return xp.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


def _rotation(xp, angle, h: int, w: int):
    """Transforms that turn each image by ``angle`` radians about its centre."""
    cos, sin = xp.cos(angle), xp.sin(angle)
    x0 = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2
    y0 = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2
    zero = xp.zeros_like(angle)
    return xp.stack([cos, -sin, x0, sin, cos, y0, zero, zero], axis=1)


def make_augment(aug: ir.Augment, input_shape: tuple[int, ...], seed: int):
    """Return ``augment(x, y, key=None) -> (x, y)`` for ``Dataset.map``, or None when nothing
    is on. ``key`` (two int64s) decides every draw; None means the run's seed alone."""
    if not aug.any:
        return None
    import tensorflow as tf
    p = _plan(aug, input_shape)

    def warp(x, transforms, nearest: bool):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=tf.cast(transforms, "float32"), output_shape=tf.shape(x)[1:3],
            fill_value=0.0, interpolation="NEAREST" if nearest else "BILINEAR",
            fill_mode="CONSTANT")

    def augment(x, y, key=None):
        key = tf.constant([seed, 0], tf.int64) if key is None else key
        keys = tf.random.experimental.stateless_split(key, 6)
        n = tf.shape(x)[0]
        draw = lambda kind, lo, hi, shape=None: tf.random.stateless_uniform(
            [n] if shape is None else shape, keys[kind], lo, hi)
        if p.one_d:
            x = tf.expand_dims(x, 1)  # (B, L, C) -> (B, 1, L, C)
        for axis in p.flips:
            coin = draw(FLIP, 0.0, 1.0, [n, 2])[:, axis - 1] < 0.5
            x = tf.where(coin[:, None, None, None], tf.reverse(x, [axis]), x)
        if p.shift_x or p.shift_y:
            x = warp(x, _translation(tf, draw(SHIFT_X, -p.shift_x, p.shift_x),
                                     draw(SHIFT_Y, -p.shift_y, p.shift_y)), p.nearest)
        if p.angle:
            x = warp(x, _rotation(tf, draw(ANGLE, -p.angle, p.angle), p.h, p.w), False)
        if aug.contrast:
            factor = draw(CONTRAST, 1 - aug.contrast, 1 + aug.contrast)[:, None, None, None]
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            x = (x - mean) * factor + mean
        if aug.brightness:  # data is normalized, so this shifts by a fraction of one std
            x = x + draw(BRIGHTNESS, -aug.brightness, aug.brightness)[:, None, None, None]
        if p.one_d:
            x = tf.squeeze(x, 1)
        return x, y

    return augment


def make_array_augment(aug: ir.Augment, input_shape: tuple[int, ...], seed: int):
    """The same augmentation for NumPy batches: ``(x, rng) -> x``, or None when nothing is on.
    Translation and rotation run through ``keras.ops.image.affine_transform`` (any backend)."""
    if not aug.any:
        return None
    import keras
    p = _plan(aug, input_shape)

    def warp(x, transforms, nearest: bool):
        return keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
            x, transforms.astype("float32"), interpolation="nearest" if nearest else "bilinear",
            fill_mode="constant"))

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if p.one_d:
            x = x[:, None]
        n = len(x)
        for axis in p.flips:
            x = np.where(rng.random((n, 1, 1, 1)) < 0.5, np.flip(x, axis), x)
        if p.shift_x or p.shift_y:
            x = warp(x, _translation(np, rng.uniform(-p.shift_x, p.shift_x, n),
                                     rng.uniform(-p.shift_y, p.shift_y, n)), p.nearest)
        if p.angle:
            x = warp(x, _rotation(np, rng.uniform(-p.angle, p.angle, n), p.h, p.w), False)
        if aug.contrast:
            factor = rng.uniform(1 - aug.contrast, 1 + aug.contrast, (n, 1, 1, 1))
            mean = x.mean(axis=(1, 2), keepdims=True)
            x = (x - mean) * factor + mean
        if aug.brightness:
            x = x + rng.uniform(-aug.brightness, aug.brightness, (n, 1, 1, 1))
        return np.asarray(x[:, 0] if p.one_d else x, "float32")

    return augment
