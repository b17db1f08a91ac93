"""Data → batches for Keras ``fit``: decode, cache, shuffle, batch, normalise, augment, prefetch.

Kinds of data, one shape of pipeline:

* arrays in memory: sliced into a tf.data graph (TensorFlow backend), or drawn as Keras
  ``PyDataset`` batches (``train.arrays``, other backends);
* memory-mapped arrays larger than the cache budget: index batches gathered from the map;
* image files: a shuffled list of places in the split, each batch decoded by one call into
  ``train.images`` and kept in a ``PixelStore`` (``file_rows``); pixels stay uint8 until a
  batch is normalised;
* TFRecord images: decoded in sequence and cached by tf.data (``tfrecords``).

``training.cache`` decides where decoded pixels are kept between epochs: ``memory``, ``disk``
(a temporary folder removed when the run ends), ``none`` (decode every epoch) or ``auto``
(see ``cache.choose_cache``). This module assembles the streams; the split (``split``), the
cache (``cache``), the epoch's draw (``clock``), the row readers (``rows``, ``file_rows``) and
the shared tf.data settings (``tfdata``) each live in their own.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract.errors import DataError
from cnnbp.contract.preprocessing import Preprocessing

from .augment import make_augment
from .cache import PixelStore, choose_cache
from .clock import EpochClock
from .data import Dataset, ImageFiles
from .file_rows import FileRows
from .images import BadImages
from .rows import ArrayRows, RowSource
from .split import split_files, split_rows, split_validation
from .tfdata import PREFETCH, settled, shuffle_seed

log = logging.getLogger(__name__)

SHUFFLE_BYTES = 256 << 20   # a cached stream reshuffles within a buffer of about this size
EVAL_BATCH = 256            # rows per validation and test batch...
# ...unless its float32 inputs would pass this many bytes: a 224x224x3 batch of 256 is 154 MB,
# and several wait in tf.data's prefetch buffers at once.
EVAL_BYTES = 32 << 20


def eval_batch(t: ir.Training, input_shape) -> int:
    """Rows per validation and test batch: larger than training's where that stays small."""
    rows = EVAL_BYTES // (4 * int(np.prod(input_shape)))
    return max(t.batch_size, min(EVAL_BATCH, rows))


@dataclass
class Pipelines:
    """A run's three streams and what they hold open (pixel stores, a disk cache)."""

    train: object
    validation: object | None
    test: object                  # (x, one-hot y) batches in a fixed order
    train_size: int
    test_size: int
    cache: str                    # what was chosen, e.g. "memory (98 MB)"
    bad: BadImages
    cache_dir: str | None = None  # removed by ``close``
    notes: list[str] = field(default_factory=list)
    stores: list = field(default_factory=list)  # PixelStores, closed by ``close``
    clock: object | None = None   # an ``EpochClock``, or the array batches (``set(epoch)``)

    def start_epoch(self, epoch: int) -> None:
        """Draw the training stream's next pass (order, augmentation) for ``epoch``: called
        as each epoch begins, before Keras starts that epoch's pass."""
        if self.clock is not None:
            self.clock.set(epoch)

    def close(self) -> None:
        """Let go of the decoded pixels: the stores, and the disk cache's folder."""
        for store in self.stores:
            store.close()
        if self.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir = None


def streams(data) -> bool:
    """Whether ``data`` is read as a stream rather than held in memory as arrays."""
    return not isinstance(data, Dataset) or mapped(data.x_train)


def mapped(x) -> bool:
    """Whether the array ``x`` is (a view of) a memory map: read in batches, not held."""
    return isinstance(x, np.memmap) or isinstance(getattr(x, "base", None), np.memmap)


def row_source(data, net: ir.Network, bad: BadImages) -> RowSource:
    """The ``RowSource`` that streams ``data``: its files, its arrays, or (TFRecords) its own."""
    if isinstance(data, ImageFiles):
        return FileRows(data, net, bad)
    if isinstance(data, Dataset):
        return ArrayRows(data, net, bad)
    return data.rows_source(net, bad)


def scaler(prep: Preprocessing, net: ir.Network, pixels: bool = True):
    """Decoded uint8 ``pixels`` (else raw array values) → the model's input.

    ``Preprocessing.from_image_bytes`` computes ``((x * raw_max / 255) / scale - mean) / std``;
    here the constants are folded into one gain and one shift per channel
    (``Preprocessing.gain_shift``), so a batch takes a multiply and an add rather than four
    passes. The two agree to float32 rounding (a test holds serving to training within 1e-5).
    """
    import tensorflow as tf
    gain, shift = prep.gain_shift(prep.raw_max / 255.0 if pixels and prep.raw_max else 1.0)
    onehot = lambda y: tf.one_hot(y, net.classes, dtype="float32")

    def to_model(x, y):
        return tf.cast(x, "float32") * gain + shift, onehot(y)

    return to_model


def make_pipelines(data, prep: Preprocessing, net: ir.Network,
                   bad: BadImages | None = None, backend: str = "tensorflow",
                   workers: int = 1) -> Pipelines:
    """The training, validation and test streams for ``data``: tf.data on the TensorFlow
    backend (and for files on any backend, when TensorFlow is installed: ``check_readable``),
    Keras ``PyDataset`` batches of arrays on other backends (``workers`` threads draw them)."""
    bad = bad or BadImages(net.training.skip_bad_images)
    if backend != "tensorflow" and isinstance(data, Dataset):
        return _arrays(data, prep, net, bad, workers)
    if isinstance(data, Dataset) and not mapped(data.x_train):
        return _in_memory(data, prep, net, bad)
    return _streaming(data, prep, net, bad)


def _in_memory(data: Dataset, prep: Preprocessing, net: ir.Network, bad) -> Pipelines:
    import tensorflow as tf

    t = net.training
    onehot = lambda y: np.eye(net.classes, dtype="float32")[y]
    x_tr, y_tr, x_val, y_val = split_validation(prep.normalize(data.x_train), data.y_train,
                                                t.validation_split, t.seed)
    x_te = prep.normalize(data.x_test)

    clock = EpochClock(t.seed)
    rows = tf.data.Dataset.from_tensor_slices((x_tr, onehot(y_tr))).cache()
    train = clock.shuffled(rows, len(x_tr)).batch(t.batch_size)
    train = clock.augmented(train, make_augment(t.augment, net.input_shape, t.seed))
    train = settled(train.prefetch(PREFETCH))

    def fixed(x, y):
        return settled(tf.data.Dataset.from_tensor_slices((x, onehot(y))).batch(
            eval_batch(t, net.input_shape)).cache().prefetch(PREFETCH))

    val = fixed(x_val, y_val) if x_val is not None and len(x_val) else None
    return Pipelines(train, val, fixed(x_te, data.y_test), len(x_tr), len(x_te),
                     "memory (arrays)", bad, clock=clock)


def check_readable(data, backend: str) -> None:
    """Refuse, before any work, files that only tf.data reads when TensorFlow is missing."""
    if isinstance(data, Dataset) and backend != "tensorflow":
        return
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise DataError(f"--data: {data.source} is read as a stream through tf.data, which "
                        f"needs TensorFlow; with KERAS_BACKEND={backend} and no TensorFlow "
                        "installed, give arrays (an .npz or a folder of .npy files), or pip "
                        "install tensorflow") from None


def _arrays(data: Dataset, prep: Preprocessing, net: ir.Network, bad, workers: int) -> Pipelines:
    from .arrays import batches
    from .augment import make_array_augment
    t = net.training
    is_mapped = mapped(data.x_train)
    tr, val = split_files(np.arange(len(data.y_train)), data.y_train, t.validation_split, t.seed) \
        if is_mapped else split_rows(len(data.y_train), t.validation_split, t.seed)
    augment = make_array_augment(t.augment, net.input_shape, t.seed)
    eval_rows = eval_batch(t, net.input_shape)
    make = lambda x, y, rows, size, **kw: batches(x, y, rows, size, prep, net, is_mapped,
                                                  workers=workers, **kw)
    train = make(data.x_train, data.y_train, tr, t.batch_size, seed=t.seed, augment=augment)
    validation = make(data.x_train, data.y_train, val, eval_rows) if len(val) else None
    test = make(data.x_test, data.y_test, np.arange(len(data.y_test)), eval_rows)
    return Pipelines(train, validation, test, len(tr), len(data.y_test),
                     "memory-mapped (arrays)" if is_mapped else "memory (arrays)", bad, clock=train)


def _streaming(data, prep: Preprocessing, net: ir.Network, bad: BadImages) -> Pipelines:
    import tensorflow as tf

    t = net.training
    auto = tf.data.AUTOTUNE
    to_model = scaler(prep, net, pixels=not isinstance(data, Dataset))
    source = row_source(data, net, bad)
    tr, val = split_files(np.arange(source.train_count), data.y_train, t.validation_split,
                          t.seed)
    decoded = (len(tr) + len(val)) * source.row_bytes
    tmp = tempfile.gettempdir()
    mode = choose_cache(t.cache, decoded, t.cache_budget_mb, tmp, t.epochs)
    cache_dir = tempfile.mkdtemp(prefix="cnnbp-cache-") if mode == "disk" else None
    size = f"{decoded / 1e6:,.0f} MB decoded"
    log.info("streaming %d training rows; cache %s (%s)", len(tr), mode, size)
    eval_rows = eval_batch(t, net.input_shape)
    stores = []
    clock = EpochClock(t.seed)

    if isinstance(source, FileRows):
        def store(name, count):
            if mode == "none":
                return None
            stores.append(PixelStore(count, tuple(net.input_shape),
                                     Path(cache_dir) / name if mode == "disk" else None))
            return stores[-1]

        train = source.batches(tr, "train", t.batch_size, store("train", len(tr)), clock)
        validation = source.batches(val, "validation", eval_rows,
                                    store("validation", len(val))) if len(val) else None
        test = source.batches(np.arange(source.test_count), "test", eval_rows)  # read once
    else:
        train, validation, test = _cached_rows(source, tr, val, mode, cache_dir, t, eval_rows,
                                               clock)

    train = clock.augmented(train.map(to_model, num_parallel_calls=auto),
                            make_augment(t.augment, net.input_shape, t.seed))
    finish = lambda ds: settled(ds.map(to_model, num_parallel_calls=auto).prefetch(PREFETCH))
    return Pipelines(settled(train.prefetch(PREFETCH)),
                     finish(validation) if validation is not None else None,
                     finish(test), len(tr), source.test_count, f"{mode} ({size})", bad,
                     cache_dir, stores=stores, clock=clock)


def _cached_rows(source, tr, val, mode, cache_dir, t, eval_rows, clock: EpochClock):
    """Batches of rows read in sequence (TFRecords, memory maps), cached by tf.data."""
    def cached(ds, name):
        if mode == "memory":
            return ds.cache()
        if mode == "disk":
            return ds.cache(str(Path(cache_dir) / name))
        return ds

    # The training stream: a file order fixed by the seed, so a cache written in the first
    # epoch matches every later one; reshuffled each epoch, in full without a cache, within
    # a SHUFFLE_BYTES buffer over a cache; each epoch's order drawn from its ``clock`` key.
    if mode == "none":
        train = clock.each_epoch(lambda key: source.rows(tr, "train", shuffle=shuffle_seed(key)),
                                 len(tr) if isinstance(source, ArrayRows) else None)
    else:
        train = cached(source.rows(np.random.default_rng(t.seed).permutation(tr), "train"),
                       "train")
        buffer = int(min(len(tr), max(t.batch_size, SHUFFLE_BYTES // source.row_bytes)))
        train = clock.shuffled(train, buffer)
    validation = cached(source.rows(val, "validation"), "validation").batch(eval_rows) \
        if len(val) else None
    test = source.rows(np.arange(source.test_count), "test").batch(eval_rows)
    return train.batch(t.batch_size), validation, test
