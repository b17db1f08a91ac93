"""Arrays → tf.data pipelines: cache, shuffle, batch, augment, prefetch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnbp.builder import ir

from .augment import make_augment
from cnnbp.contract.preprocessing import Preprocessing
from .sources import Dataset


@dataclass
class Pipelines:
    train: object
    validation: object | None
    test: object
    train_size: int
    x_test: np.ndarray  # normalized, for evaluation
    y_test: np.ndarray


def split_validation(x, y, fraction: float, seed: int):
    """Hold out ``fraction`` of the training set, the same way for a given seed."""
    if fraction <= 0:
        return x, y, None, None
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * fraction))
    val, tr = order[:cut], order[cut:]
    return x[tr], y[tr], x[val], y[val]


def make_pipelines(data: Dataset, prep: Preprocessing, net: ir.Network) -> Pipelines:
    import tensorflow as tf

    t = net.training
    onehot = lambda y: np.eye(net.classes, dtype="float32")[y]
    x_tr, y_tr, x_val, y_val = split_validation(prep.normalize(data.x_train), data.y_train,
                                                t.validation_split, t.seed)
    x_te = prep.normalize(data.x_test)
    auto = tf.data.AUTOTUNE

    train = tf.data.Dataset.from_tensor_slices((x_tr, onehot(y_tr))).cache()
    train = train.shuffle(len(x_tr), seed=t.seed, reshuffle_each_iteration=True)
    train = train.batch(t.batch_size)
    augment = make_augment(t.augment, net.input_shape, t.seed)
    if augment is not None:
        train = train.map(augment, num_parallel_calls=auto)
    train = train.prefetch(auto)

    def fixed(x, y):
        return tf.data.Dataset.from_tensor_slices((x, onehot(y))).batch(
            max(t.batch_size, 256)).cache().prefetch(auto)

    val = fixed(x_val, y_val) if x_val is not None and len(x_val) else None
    return Pipelines(train, val, fixed(x_te, data.y_test), len(x_tr), x_te, data.y_test)
