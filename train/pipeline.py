"""Data → batches for Keras ``fit``: decode, cache, shuffle, batch, normalise, augment, prefetch.

Kinds of data, one shape of pipeline:

* arrays in memory: sliced into a tf.data graph (TensorFlow backend), or drawn as Keras
  ``PyDataset`` batches (``train.arrays``, other backends);
* memory-mapped arrays larger than the cache budget: index batches gathered from the map;
* image files: a shuffled list of places in the split, each batch decoded by one call into
  ``train.images`` and kept in a ``PixelStore``; pixels stay uint8 until a batch is
  normalised;
* TFRecord images: decoded in sequence and cached by tf.data.

``training.cache`` decides where decoded pixels are kept between epochs: ``memory``, ``disk``
(a temporary folder removed when the run ends), ``none`` (decode every epoch) or ``auto``
(see ``choose_cache``).
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
from cnnbp.contract.errors import DataError
from cnnbp.contract.preprocessing import Preprocessing

from . import jpeg
from .augment import make_augment
from .images import BadImages, pixel_decoder
from .sources import Dataset, ImageFiles

log = logging.getLogger(__name__)

SHUFFLE_BYTES = 256 << 20   # a cached stream reshuffles within a buffer of about this size
EVAL_BATCH = 256            # rows per validation and test batch...
# ...unless its float32 inputs would pass this many bytes: a 224x224x3 batch of 256 is 154 MB,
# and several wait in tf.data's prefetch buffers at once.
EVAL_BYTES = 32 << 20

# Batches decoded at once: one per core this process may use, at least two so reading
# overlaps decoding.
DECODE_CALLS = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
PREFETCH = 2  # batches made ahead of the training step


def settled(ds):
    """``ds`` without tf.data's autotuning thread, its parallelism and buffers fixed here.

    Deleting an iterator waits for that thread, which sleeps between its rounds: Keras
    deletes one per epoch, and 3.4-4.1 s went by after ``fit``'s last epoch in about half
    the runs (gdb: ``~RootDataset::Iterator`` waiting on ``Model::OptimizeLoop``); with it
    off, none did (docs/benchmarks.md). A map left at AUTOTUNE then runs a fixed number of
    calls: the size of tf.data's thread pool (one thread per core), capped by TensorFlow.
    """
    import tensorflow as tf
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


class EpochClock:
    """The epoch the training stream is drawn for, set as each epoch begins
    (``Pipelines.start_epoch``, from the run's callback) and read once when a pass over the
    stream starts.

    Each epoch's order and augmentation come from a key made of the run's seed and this number
    alone, so a resumed run draws what the same run never interrupted drew. tf.data's
    ``reshuffle_each_iteration`` cannot: it draws from how many passes this process has made,
    which a resumed process starts again from nothing. The epoch is not counted by the stream
    either, since Keras makes (and drops unused) an extra pass ahead of the next epoch.
    """

    def __init__(self, seed: int):
        import tensorflow as tf
        self.seed = seed
        with tf.device("/cpu:0"):  # tf.data runs on the host; it cannot read a GPU's variable
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="cnnbp_epoch")

    def set(self, epoch: int) -> None:
        self.epoch.assign(epoch)

    def key(self):
        """The epoch's key, two int64s (seed, epoch), read when a graph runs it."""
        import tensorflow as tf
        return tf.stack([tf.constant(self.seed, tf.int64), self.epoch.read_value()])

    def each_epoch(self, make, count: int | None = None):
        """``make(key)`` rebuilt for every pass from the epoch's key; ``count``, the elements
        in one pass where known, keeps that known to Keras."""
        import tensorflow as tf

        def one_pass(_):
            # This function's own graph seed: ``Dataset.shuffle`` compares (graph seed, op
            # seed) with (0, 0) in Python, which fails for a tensor op seed when the graph
            # seed is 0 (a run with seed 0). Any other constant will do: the op seed decides.
            tf.random.set_seed(1)
            return make(self.key())

        ds = tf.data.Dataset.range(1).flat_map(one_pass)
        return ds.apply(tf.data.experimental.assert_cardinality(count)) if count is not None \
            else ds

    def shuffled(self, ds, buffer: int):
        """``ds`` (built once: its cache is kept) in a new order each epoch, drawn within
        ``buffer`` elements."""
        count = int(ds.cardinality())
        return self.each_epoch(lambda key: ds.shuffle(buffer, seed=shuffle_seed(key)),
                               count if count >= 0 else None)

    def augmented(self, ds, augment):
        """``ds``'s batches through ``augment``, each with its own key (the epoch's key folded
        with the batch's place), so no draw depends on the batches drawn before it."""
        if augment is None:
            return ds
        import tensorflow as tf
        fold = tf.random.experimental.stateless_fold_in
        return ds.enumerate().map(lambda i, batch: augment(*batch, key=fold(self.key(), i)),
                                  num_parallel_calls=tf.data.AUTOTUNE)


def shuffle_seed(key):
    """A ``Dataset.shuffle`` seed (an int64 scalar) from an epoch's key."""
    import tensorflow as tf
    return tf.random.stateless_uniform([], key, 0, 2 ** 62, dtype=tf.int64)


def eval_batch(t: ir.Training, input_shape) -> int:
    """Rows per validation and test batch: larger than training's where that stays small."""
    rows = EVAL_BYTES // (4 * int(np.prod(input_shape)))
    return max(t.batch_size, min(EVAL_BATCH, rows))


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
    stores: list = field(default_factory=list)  # PixelStores, closed by ``close``
    clock: object | None = None   # an ``EpochClock``, or the array batches (``set(epoch)``)

    def start_epoch(self, epoch: int) -> None:
        """Draw the training stream's next pass (order, augmentation) for ``epoch``: called
        as each epoch begins, before Keras starts that epoch's pass."""
        if self.clock is not None:
            self.clock.set(epoch)

    def close(self) -> None:
        for store in self.stores:
            store.close()
        if self.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir = None


def split_validation(x, y, fraction: float, seed: int):
    """Hold out ``fraction`` of the training set, the same way for a given seed."""
    if fraction <= 0:
        return x, y, None, None
    tr, val = _split_rows(len(x), fraction, seed)
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


def choose_cache(mode: str, decoded_bytes: int, budget_mb: int, where: str,
                 epochs: int = 2) -> str:
    """``memory``, ``disk`` or ``none`` for the ``training.cache`` setting ``mode``.

    ``auto`` keeps nothing for a single epoch (nothing would read it back). Else memory
    within the budget; else disk when the folder has twice the room and the kernel's page
    cache can hold the file (a quarter of the available memory): writing a larger one is
    throttled to the disk's speed, and reading it back from the disk is no faster than
    decoding again (measured in docs/benchmarks.md); else none. JPEGs at the input size, which
    TensorFlow decodes in the graph, are no exception any more: a cache cost them 1.1-1.2 s in
    the first epoch and saved 0.3-0.9 s in each later one (of 5.5 s; bench/cache_epochs.py).
    """
    if mode != "auto":
        return mode
    if epochs <= 1:
        return "none"
    if decoded_bytes <= budget_mb << 20:
        return "memory"
    from cnnbp.contract.machine import available_bytes
    free = shutil.disk_usage(where).free
    fits = free >= 2 * decoded_bytes and available_bytes() >= 4 * decoded_bytes
    return "disk" if fits else "none"


def _scaler(prep: Preprocessing, net: ir.Network, pixels: bool = True):
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
    mapped = _mapped(data.x_train)
    tr, val = split_files(np.arange(len(data.y_train)), data.y_train, t.validation_split, t.seed) \
        if mapped else _split_rows(len(data.y_train), t.validation_split, t.seed)
    augment = make_array_augment(t.augment, net.input_shape, t.seed)
    eval_rows = eval_batch(t, net.input_shape)
    make = lambda x, y, rows, size, **kw: batches(x, y, rows, size, prep, net, mapped,
                                                  workers=workers, **kw)
    train = make(data.x_train, data.y_train, tr, t.batch_size, seed=t.seed, augment=augment)
    validation = make(data.x_train, data.y_train, val, eval_rows) if len(val) else None
    test = make(data.x_test, data.y_test, np.arange(len(data.y_test)), eval_rows)
    return Pipelines(train, validation, test, len(tr), len(data.y_test),
                     "memory-mapped (arrays)" if mapped else "memory (arrays)", bad, clock=train)


def _split_rows(count: int, fraction: float, seed: int):
    """The rows ``split_validation`` keeps and holds out, so both backends split alike."""
    if fraction <= 0:
        return np.arange(count), np.arange(0)
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * fraction))
    return order[cut:], order[:cut]


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
    mode = choose_cache(t.cache, decoded, t.cache_budget_mb, tmp, t.epochs)
    cache_dir = tempfile.mkdtemp(prefix="cnnbp-cache-") if mode == "disk" else None
    size = f"{decoded / 1e6:,.0f} MB decoded"
    log.info("streaming %d training rows; cache %s (%s)", len(tr), mode, size)
    eval_rows = eval_batch(t, net.input_shape)
    stores = []
    clock = EpochClock(t.seed)

    if isinstance(source, _FileRows):
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
                                 len(tr) if isinstance(source, _ArrayRows) else None)
    else:
        train = cached(source.rows(np.random.default_rng(t.seed).permutation(tr), "train"),
                       "train")
        buffer = int(min(len(tr), max(t.batch_size, SHUFFLE_BYTES // source.row_bytes)))
        train = clock.shuffled(train, buffer)
    validation = cached(source.rows(val, "validation"), "validation").batch(eval_rows) \
        if len(val) else None
    test = source.rows(np.arange(source.test_count), "test").batch(eval_rows)
    return train.batch(t.batch_size), validation, test


class PixelStore:
    """Decoded images kept between epochs by their place in a split: in memory, or in a file
    read back with ``pread`` (so the kernel's page cache holds it, not this process).

    Unlike ``Dataset.cache`` followed by a shuffle buffer, any order can be read back: every
    epoch, the first included, is shuffled in full, and no buffer has to fill before the first
    step or holds a second copy of the pixels.
    """

    UNKNOWN, KEPT, BAD = 0, 1, 2

    def __init__(self, count: int, shape: tuple, path: Path | None = None):
        self.row = int(np.prod(shape))
        self.state = np.zeros(count, "uint8")
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600) if path else None
        # np.empty commits no memory until a row is written
        self.pixels = np.empty((count, *shape), "uint8") if path is None else None

    def read(self, i: int, out: np.ndarray) -> None:
        if self.fd is None:
            out[...] = self.pixels[i]
        else:
            os.preadv(self.fd, [memoryview(out).cast("B")], i * self.row)

    def write(self, i: int, pixels: np.ndarray, ok: bool) -> None:
        if ok:
            if self.fd is None:
                self.pixels[i] = pixels
            else:
                os.pwrite(self.fd, np.ascontiguousarray(pixels).tobytes(), i * self.row)
        self.state[i] = self.KEPT if ok else self.BAD  # after the pixels: readers check it

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.pixels = None


class RowSource:
    """Rows of one kind of streamed data, by index, as (pixels or values, label) elements."""

    def __init__(self, data, net: ir.Network, bad: BadImages):
        self.data, self.net, self.bad = data, net, bad
        shape = tuple(net.input_shape)
        self.row_bytes = int(np.prod(shape)) * (
            1 if not isinstance(data, Dataset) else np.dtype(data.x_train.dtype).itemsize)
        self.train_count, self.test_count = len(data.y_train), len(data.y_test)

    def chunks(self, idx, split: str):
        """Batches of (values, label) rows for one pass in order (the statistics)."""
        return self.rows(idx, split).batch(256)

    @classmethod
    def of(cls, data, net, bad) -> "RowSource":
        return _FileRows(data, net, bad) if isinstance(data, ImageFiles) else \
            _ArrayRows(data, net, bad) if isinstance(data, Dataset) else \
            data.rows_source(net, bad)


class _FileRows(RowSource):
    def _files(self, split: str):
        if split == "test":
            return self.data.test_files, self.data.test_labels
        return self.data.train_files, self.data.train_labels

    def batches(self, idx, split: str, batch: int, store: PixelStore | None = None,
                shuffle: EpochClock | None = None):
        """Batches of (uint8 pixels, label) for the files ``idx``, reshuffled every epoch from
        the ``shuffle`` clock's key. Each batch is decoded by ``jpeg.decode_batch`` (files read in
        the graph for TensorFlow's decoder where it equals Pillow, else one Pillow call) and
        kept in ``store``, from which later epochs read it back."""
        import tensorflow as tf

        files, labels = self._files(split)
        # file names as the OS's bytes (any letters, even undecodable ones); os.fsdecode reverses
        paths = [os.fsencode(files[i]) for i in idx]
        shape = tuple(self.net.input_shape)
        fast = jpeg.fast_path_for(shape, self.bad.skip)
        if fast:  # where to look if TensorFlow's decoder stops the run
            self.bad.scans.setdefault(shape, {}).update(dict.fromkeys(paths))
        # Without the fast path, Pillow opens each file, so one that cannot be read (moved,
        # deleted, no permission) is a bad file like any other, skipped with --skip-bad-images.
        decode = pixel_decoder(shape, self.net.training.resize, self.bad, from_bytes=fast)

        def pillow(contents, names):
            pixels = np.empty((len(contents), *shape), "uint8")
            ok = np.ones(len(contents), bool)
            for j, (data, name) in enumerate(zip(contents, names)):
                pixels[j], ok[j] = decode(data, name)
            return pixels, ok

        def decoded(places):
            names = tf.gather(paths_t, places)
            if not fast:
                return jpeg.decode_batch(names, names, shape, pillow, fast=False)
            contents = tf.map_fn(tf.io.read_file, names, fn_output_signature=tf.string)
            return jpeg.decode_batch(contents, names, shape, pillow, fast=True)

        def kept(places):  # rows already in the store, and each row's state
            state = store.state[places]
            pixels = np.empty((int((state == PixelStore.KEPT).sum()), *shape), "uint8")
            for j, i in enumerate(places[state == PixelStore.KEPT]):
                store.read(i, pixels[j])
            return pixels, state

        def keep(places, pixels, ok):  # the pixels pass through: see ``fn``
            for i, row, good in zip(places, pixels, ok):
                store.write(i, row, good)
            return pixels

        def fn(places):
            y = tf.gather(labels_t, places)
            if store is None:
                x, ok = decoded(places)
            else:
                old, state = tf.numpy_function(kept, [places], [tf.uint8, tf.uint8],
                                               stateful=False)
                at_old = tf.cast(tf.where(state == PixelStore.KEPT)[:, 0], tf.int32)
                at_new = tf.cast(tf.where(state == PixelStore.UNKNOWN)[:, 0], tf.int32)
                at_bad = tf.cast(tf.where(state == PixelStore.BAD)[:, 0], tf.int32)
                new, ok_new = decoded(tf.gather(places, at_new))
                # Declared stateless, with the new pixels passing through it so that it cannot
                # be pruned: a stateful numpy_function made the first epoch's map run about
                # half as fast (6.9 against 3.4 s for 5,760 files, docs/benchmarks.md).
                new = tf.numpy_function(keep, [tf.gather(places, at_new), new, ok_new],
                                        tf.uint8, stateful=False)
                x = tf.dynamic_stitch(
                    [at_old, at_new, at_bad],
                    [tf.ensure_shape(old, (None, *shape)), tf.ensure_shape(new, (None, *shape)),
                     tf.zeros((tf.size(at_bad), *shape), tf.uint8)])
                ok = tf.dynamic_stitch([at_old, at_new, at_bad],
                                       [tf.ones_like(at_old, tf.bool), ok_new,
                                        tf.zeros_like(at_bad, tf.bool)])
            x = tf.ensure_shape(x, (None, *shape))
            if self.bad.skip:  # skipped files (``--skip-bad-images``) leave a shorter batch
                return tf.boolean_mask(x, ok), tf.boolean_mask(y, ok)
            return x, y

        paths_t = tf.constant(paths, tf.string)
        labels_t = tf.constant(np.asarray(labels, "int64")[np.asarray(idx, "int64")], tf.int64)
        ds = tf.data.Dataset.range(len(idx))
        if shuffle is not None:
            ds = shuffle.shuffled(ds, len(idx))
        # a fixed parallelism: AUTOTUNE starts low and, over one epoch of large elements,
        # had not ramped up (1,565 against 2,543 images/s with 2 calls, Pillow at 224x224)
        ds = ds.batch(batch).map(tf.autograph.experimental.do_not_convert(fn),
                                 num_parallel_calls=DECODE_CALLS)
        if self.bad.skip:  # a batch of only skipped files would be an empty step
            ds = ds.filter(lambda x, y: tf.shape(x)[0] > 0)
        return settled(ds)

    def chunks(self, idx, split: str):
        return self.batches(idx, split, 64)  # batched as decoded: no unbatch and rebatch


def _decoded(ds):
    """(pixels, ok, label) → (pixels, label), dropping what failed to decode (skipped)."""
    def good(x, ok, y):
        return ok

    def drop_flag(x, ok, y):
        return x, y

    return ds.filter(good).map(drop_flag)


class _ArrayRows(RowSource):
    """Rows gathered from a memory map a few at a time (sorted, so reads stay sequential)."""

    def rows(self, idx, split: str, shuffle=None):
        """The rows at ``idx``, in a full shuffle when ``shuffle`` (an int64 seed, or a tensor
        of one: ``shuffle_seed``) is given."""
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
        return settled(ds).apply(tf.data.experimental.assert_cardinality(len(idx)))
