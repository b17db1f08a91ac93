"""Data → tf.data pipelines: decode, cache, shuffle, batch, normalise, augment, prefetch.

Three kinds of data, one shape of pipeline:

* arrays in memory: sliced into the graph, as before;
* memory-mapped arrays larger than the cache budget: index batches gathered from the map;
* image files and TFRecord images: a file (or record) list decoded in parallel by
  ``train.images``; pixels stay uint8 until a batch is normalised.

``training.cache`` decides where decoded pixels are kept between epochs: ``memory``, ``disk``
(a temporary folder removed when the run ends), ``none`` (decode every epoch) or ``auto``:
memory when the decoded training and validation pixels fit ``cache_budget_mb``, else disk
when the temporary folder has twice that room free, else none.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract.preprocessing import Preprocessing

from .augment import make_augment
from .images import BadImages, decoder
from .sources import Dataset, ImageFiles

log = logging.getLogger(__name__)

SHUFFLE_BYTES = 256 << 20   # a cached stream reshuffles within a buffer of about this size
EVAL_BATCH = 256
# Files decoded per tf.numpy_function call: the per-call cost (GIL, tensor conversion) is
# shared by several small images. Chosen by bench/stream_folder.py --decode-only.
DECODE_BATCH = 16


@dataclass
class Pipelines:
    train: object
    validation: object | None
    test: object                  # (x, one-hot y) batches in a fixed order
    train_size: int
    test_size: int
    cache: str                    # what was chosen, e.g. "memory (98 MB)"
    bad: BadImages
    cache_dir: str | None = None  # removed by ``close``
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir = None


def split_validation(x, y, fraction: float, seed: int):
    """Hold out ``fraction`` of the training set, the same way for a given seed."""
    if fraction <= 0:
        return x, y, None, None
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * fraction))
    val, tr = order[:cut], order[cut:]
    return x[tr], y[tr], x[val], y[val]


def split_files(files, labels, fraction: float, seed: int):
    """A stratified, seeded validation split of a file list (indices into it)."""
    idx = np.arange(len(files))
    if fraction <= 0 or len(files) < 2:
        return idx, idx[:0]
    from sklearn.model_selection import train_test_split
    try:
        tr, val = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify
        tr, val = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(tr), np.sort(val)


def streams(data) -> bool:
    """Whether ``data`` is read as a stream rather than held in memory as arrays."""
    return not isinstance(data, Dataset) or _mapped(data.x_train)


def _mapped(x) -> bool:
    return isinstance(x, np.memmap) or isinstance(getattr(x, "base", None), np.memmap)


def choose_cache(mode: str, decoded_bytes: int, budget_mb: int, where: str) -> str:
    """``memory``, ``disk`` or ``none`` for the ``training.cache`` setting ``mode``."""
    if mode != "auto":
        return mode
    if decoded_bytes <= budget_mb << 20:
        return "memory"
    free = shutil.disk_usage(where).free
    return "disk" if free >= 2 * decoded_bytes else "none"


def _scaler(prep: Preprocessing, net: ir.Network, pixels: bool = True):
    """Decoded uint8 ``pixels`` (else raw array values) → the model's input, in the order of
    operations of ``Preprocessing.from_image_bytes`` (so both give the same float32 values)."""
    import tensorflow as tf
    mean, std = np.float32(prep.mean), np.float32(prep.std)
    per_pixel = np.float32(prep.raw_max / 255.0) if pixels and prep.raw_max else None
    scale = np.float32(prep.scale)
    onehot = lambda y: tf.one_hot(y, net.classes, dtype="float32")

    def to_model(x, y):
        x = tf.cast(x, "float32")
        if per_pixel is not None:
            x = x * per_pixel
        return (x / scale - mean) / std, onehot(y)

    return to_model


def make_pipelines(data, prep: Preprocessing, net: ir.Network,
                   bad: BadImages | None = None) -> Pipelines:
    bad = bad or BadImages(net.training.skip_bad_images)
    if isinstance(data, Dataset) and not _mapped(data.x_train):
        return _in_memory(data, prep, net, bad)
    return _streaming(data, prep, net, bad)


def _in_memory(data: Dataset, prep: Preprocessing, net: ir.Network, bad) -> Pipelines:
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
            max(t.batch_size, EVAL_BATCH)).cache().prefetch(auto)

    val = fixed(x_val, y_val) if x_val is not None and len(x_val) else None
    return Pipelines(train, val, fixed(x_te, data.y_test), len(x_tr), len(x_te),
                     "memory (arrays)", bad)


def _streaming(data, prep: Preprocessing, net: ir.Network, bad: BadImages) -> Pipelines:
    import tensorflow as tf

    t = net.training
    auto = tf.data.AUTOTUNE
    to_model = _scaler(prep, net, pixels=not isinstance(data, Dataset))
    source = RowSource.of(data, net, bad)
    tr, val = split_files(np.arange(source.train_count), data.y_train, t.validation_split,
                          t.seed)
    decoded = (len(tr) + len(val)) * source.row_bytes
    tmp = tempfile.gettempdir()
    mode = choose_cache(t.cache, decoded, t.cache_budget_mb, tmp)
    cache_dir = tempfile.mkdtemp(prefix="cnnbp-cache-") if mode == "disk" else None
    size = f"{decoded / 1e6:,.0f} MB decoded"
    log.info("streaming %d training rows; cache %s (%s)", len(tr), mode, size)

    def cached(ds, name):
        if mode == "memory":
            return ds.cache()
        if mode == "disk":
            return ds.cache(str(Path(cache_dir) / name))
        return ds

    # The training stream: a file order fixed by the seed, so a cache written in the first
    # epoch matches every later one; reshuffled each epoch, in full without a cache, within
    # a SHUFFLE_BYTES buffer over a cache.
    if mode == "none":
        train = source.rows(tr, "train", shuffle=t.seed)
    else:
        train = cached(source.rows(np.random.default_rng(t.seed).permutation(tr), "train"),
                       "train")
        buffer = int(min(len(tr), max(t.batch_size, SHUFFLE_BYTES // source.row_bytes)))
        train = train.shuffle(buffer, seed=t.seed, reshuffle_each_iteration=True)
    train = train.batch(t.batch_size).map(to_model, num_parallel_calls=auto)
    augment = make_augment(t.augment, net.input_shape, t.seed)
    if augment is not None:
        train = train.map(augment, num_parallel_calls=auto)
    train = train.prefetch(auto)

    def fixed(rows, name, cache=True):
        ds = source.rows(rows, name)
        ds = cached(ds, name) if cache else ds
        return ds.batch(max(t.batch_size, EVAL_BATCH)).map(to_model, num_parallel_calls=auto) \
            .prefetch(auto)

    validation = fixed(val, "validation") if len(val) else None
    test = fixed(np.arange(source.test_count), "test", cache=False)  # read once, at the end
    return Pipelines(train, validation, test, len(tr), source.test_count,
                     f"{mode} ({size})", bad, cache_dir)


class RowSource:
    """Rows of one kind of streamed data, by index, as (pixels or values, label) elements."""

    def __init__(self, data, net: ir.Network, bad: BadImages):
        self.data, self.net, self.bad = data, net, bad
        shape = tuple(net.input_shape)
        self.row_bytes = int(np.prod(shape)) * (
            1 if not isinstance(data, Dataset) else np.dtype(data.x_train.dtype).itemsize)
        self.train_count, self.test_count = len(data.y_train), len(data.y_test)

    @classmethod
    def of(cls, data, net, bad) -> "RowSource":
        return _FileRows(data, net, bad) if isinstance(data, ImageFiles) else \
            _ArrayRows(data, net, bad) if isinstance(data, Dataset) else \
            data.rows_source(net, bad)


class _FileRows(RowSource):
    def rows(self, idx, split: str, shuffle: int | None = None):
        import tensorflow as tf
        files = self.data.train_files if split != "test" else self.data.test_files
        labels = self.data.train_labels if split != "test" else self.data.test_labels
        # file names as the OS's bytes (any letters, even undecodable ones); os.fsdecode reverses
        paths = np.array([os.fsencode(files[i]) for i in idx], dtype=object) if len(idx) \
            else np.zeros((0,), bytes)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels[np.asarray(idx, "int64")]))
        if shuffle is not None:
            ds = ds.shuffle(len(idx), seed=shuffle, reshuffle_each_iteration=True)
        decode = decoder(self.net.input_shape, self.net.training.resize, self.bad)
        if DECODE_BATCH > 1:  # one Python call decodes several files (see DECODE_BATCH)
            ds = ds.batch(DECODE_BATCH).map(lambda path, label: (*decode(path, path), label),
                                            num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        else:
            ds = ds.map(lambda path, label: (*decode(path, path), label),
                        num_parallel_calls=tf.data.AUTOTUNE)
        ds = _decoded(ds)
        # Without skipping, every file yields a row (or stops the run): say how many, so
        # Keras knows the epoch's length.
        return ds if self.bad.skip else ds.apply(tf.data.experimental.assert_cardinality(
            len(idx)))


def _decoded(ds):
    """(pixels, ok, label) → (pixels, label), dropping what failed to decode (skipped)."""
    def good(x, ok, y):
        return ok

    def drop_flag(x, ok, y):
        return x, y

    return ds.filter(good).map(drop_flag)


class _ArrayRows(RowSource):
    """Rows gathered from a memory map a few at a time (sorted, so reads stay sequential)."""

    def rows(self, idx, split: str, shuffle: int | None = None):
        import tensorflow as tf
        x = self.data.x_train if split != "test" else self.data.x_test
        y = self.data.y_train if split != "test" else self.data.y_test
        shape = tuple(self.net.input_shape)

        def gather(i):
            i = np.sort(i)
            return np.ascontiguousarray(x[i]), y[i]

        def fn(i):
            rows, labels = tf.numpy_function(gather, [i], [tf.as_dtype(x.dtype), tf.int64],
                                             stateful=False)
            rows.set_shape((None, *shape))
            labels.set_shape((None,))
            return rows, labels

        ds = tf.data.Dataset.from_tensor_slices(np.asarray(idx, "int64"))
        if shuffle is not None:
            ds = ds.shuffle(len(idx), seed=shuffle, reshuffle_each_iteration=True)
        ds = ds.batch(64).map(fn, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        return ds.apply(tf.data.experimental.assert_cardinality(len(idx)))
