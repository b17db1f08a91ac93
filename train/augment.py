"""Batched random augmentation of the training stream (never part of the exported model):
TensorFlow ops for tf.data, NumPy for the array batches of other Keras backends."""
from __future__ import annotations

import numpy as np

from cnnbp.builder import ir


def _plan(aug: ir.Augment, input_shape: tuple[int, ...], seed: int):
    """(one_d, spatial Keras layers, flip axes) for ``aug``; 1-D signals become 1-pixel-high
    images so the same layers move them."""
    import keras
    one_d = len(input_shape) == 2
    h, w = (1, input_shape[0]) if one_d else input_shape[:2]
    L = keras.layers
    spatial = []
    if aug.crop or aug.translate:
        fy = max(aug.translate, aug.crop / h) if h > 1 else 0.0
        fx = max(aug.translate, aug.crop / w)
        spatial.append(L.RandomTranslation(fy, fx, fill_mode="constant", seed=seed,
                                           interpolation="nearest" if aug.crop else "bilinear"))
    if aug.rotate:
        spatial.append(L.RandomRotation(aug.rotate / 360.0, fill_mode="constant", seed=seed + 1))
    flips = {"horizontal": (2,), "vertical": (1,), "both": (1, 2)}.get(aug.flip, ())
    return one_d, spatial, flips


def make_augment(aug: ir.Augment, input_shape: tuple[int, ...], seed: int):
    """Return a function ``batch -> batch`` for ``Dataset.map``, or None when nothing is on."""
    if not aug.any:
        return None
    import tensorflow as tf
    one_d, spatial, flips = _plan(aug, input_shape, seed)

    def augment(x, y):
        if one_d:
            x = tf.expand_dims(x, 1)  # (B, L, C) -> (B, 1, L, C)
        n = tf.shape(x)[0]
        for axis in flips:
            coin = tf.random.uniform([n, 1, 1, 1], seed=seed + 10 + axis) < 0.5
            x = tf.where(coin, tf.reverse(x, [axis]), x)
        for layer in spatial:
            x = layer(x, training=True)
        if aug.contrast:
            factor = tf.random.uniform([n, 1, 1, 1], 1 - aug.contrast, 1 + aug.contrast,
                                       seed=seed + 20)
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            x = (x - mean) * factor + mean
        if aug.brightness:  # data is normalized, so this shifts by a fraction of one std
            x = x + tf.random.uniform([n, 1, 1, 1], -aug.brightness, aug.brightness,
                                      seed=seed + 30)
        if one_d:
            x = tf.squeeze(x, 1)
        return x, y

    return augment


def make_array_augment(aug: ir.Augment, input_shape: tuple[int, ...], seed: int):
    """The same augmentation for NumPy batches: ``(x, rng) -> x``, or None when nothing is on.
    Translation and rotation are Keras's layers, which run on any backend."""
    if not aug.any:
        return None
    import keras
    one_d, spatial, flips = _plan(aug, input_shape, seed)

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if one_d:
            x = x[:, None]
        n = len(x)
        for axis in flips:
            x = np.where(rng.random((n, 1, 1, 1)) < 0.5, np.flip(x, axis), x)
        for layer in spatial:
            x = keras.ops.convert_to_numpy(layer(x, training=True))
        if aug.contrast:
            factor = rng.uniform(1 - aug.contrast, 1 + aug.contrast, (n, 1, 1, 1))
            mean = x.mean(axis=(1, 2), keepdims=True)
            x = (x - mean) * factor + mean
        if aug.brightness:
            x = x + rng.uniform(-aug.brightness, aug.brightness, (n, 1, 1, 1))
        return np.asarray(x[:, 0] if one_d else x, "float32")

    return augment
