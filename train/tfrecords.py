"""Sharded TFRecord files → a streamed source of encoded images.

Feature spec (one ``tf.train.Example`` per image)::

    image   bytes   the encoded file: PNG, JPEG or any format Pillow reads
    label   int64   the class index, 0 .. classes-1

``--data 'shards/*.tfrecord'`` takes every matching file in name order. Shards whose file
name contains ``test`` hold the test set; without any, every fifth record (index 0, 5, 10, …)
is held out. A ``classes.txt`` beside the shards (one name a line, line k for label k) names
the classes; otherwise they are numbered. Images are decoded by the same ``image_pixels`` as
a folder.

Writing one::

    ex = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[open(f, "rb").read()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[k]))}))
    writer.write(ex.SerializeToString())
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import BadImages, decoder
from .labels import check_labels, class_names, fail, listed
from .rows import RowSource
from .tfdata import drop_failed, settled

HOLD_OUT_EVERY = 5


@dataclass(frozen=True)
class TFRecords:
    """TFRecord shards as a streamed source: shard lists, every record's label, class names."""

    train_shards: tuple[str, ...]
    test_shards: tuple[str, ...]      # empty: every HOLD_OUT_EVERY-th record is the test set
    y_train: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    scale: float = 255.0
    raw_max: float | None = 255.0
    named: bool = False  # a classes.txt names the classes
    label_map: tuple[int, ...] | None = None  # label k in the records is output label_map[k]

    def rows_source(self, net, bad: BadImages):
        """The ``RowSource`` that reads these shards' records for ``pipeline``."""
        return _RecordRows(self, net, bad)


def _features():
    import tensorflow as tf
    return {"image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64)}


def _labels(shards, limit: int | None, why: str) -> np.ndarray:
    """Every record's label, shard by shard; the first outside ``0 .. limit-1`` is refused,
    named by its shard and record."""
    import tensorflow as tf
    spec = {"label": _features()["label"]}
    out = []
    for shard in shards:
        ds = tf.data.TFRecordDataset(shard).batch(4096).map(
            lambda r: tf.io.parse_example(r, spec)["label"])
        try:
            labels = np.array([y for batch in ds.as_numpy_iterator() for y in batch], "int64")
        except tf.errors.OpError as exc:
            raise fail(f"{shard} is not a TFRecord file of tf.train.Example records with an "
                       f"int64 'label' and a bytes 'image' feature ({exc.message.splitlines()[0]})"
                       ) from None
        check_labels(labels, f"{shard}: label", limit, why)
        out.append(labels)
    return np.concatenate(out) if out else np.zeros(0, "int64")


@dataclass(frozen=True)
class Shards:
    """What the file names and ``classes.txt`` tell without reading a record."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    names: tuple[str, ...] | None  # classes.txt, when there is one


def shards(spec: str, input_shape) -> Shards:
    """The shards ``spec`` matches, split into training and test by their names, and the
    class names of a ``classes.txt`` beside them; reads no record (``preload`` runs it before
    TensorFlow starts)."""
    found = sorted(glob.glob(spec))
    if not found:
        raise fail(f"{spec!r} matches no TFRecord files")
    if input_shape is None or len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise fail(f"TFRecord images need a 2-D net with 1 or 3 channels; this one takes "
                   f"{input_shape}")
    test = tuple(s for s in found if "test" in Path(s).name)
    train = tuple(s for s in found if s not in test)
    if not train:
        raise fail(f"{spec!r}: every shard is named as a test shard; the training shards are "
                   "those without 'test' in their name")
    names_file = Path(found[0]).parent / "classes.txt"
    names = None
    if names_file.is_file():
        lines = names_file.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():  # a trailing blank line names nothing
            lines.pop()
        names = class_names(lines, str(names_file))
    return Shards(train, test, names)


def tfrecord_source(spec: str, input_shape, classes: int | None = None) -> TFRecords:
    """``spec``'s shards as a ``TFRecords`` source: every record's label read and checked
    (against ``classes.txt``, else the net's ``classes``), the test set held out by shard name
    or every fifth record."""
    found = shards(spec, input_shape)
    train, test, names = found.train, found.test, found.names
    limit, why = (len(names), f"{Path(train[0]).parent / 'classes.txt'} names {len(names)} "
                              "classes") if names else \
        (classes, f"the blueprint has classes: {classes}") if classes else (None, "")
    y = _labels(train, limit, why)
    if test:
        y_tr, y_te = y, _labels(test, limit, why)
    else:
        held = np.arange(len(y)) % HOLD_OUT_EVERY == 0
        y_tr, y_te = y[~held], y[held]
    if not len(y_tr) or not len(y_te):
        raise fail(f"{spec!r}: no records in the {'training' if not len(y_tr) else 'test'} "
                   f"shards ({listed(test or train)}); training needs at least one training "
                   "and one test image")
    count = int(max(y_tr.max(), y_te.max())) + 1
    split = f"{len(test)} test shard(s)" if test else f"every {HOLD_OUT_EVERY}th record held out"
    return TFRecords(train, test, y_tr, y_te, names or tuple(str(i) for i in range(count)),
                     f"TFRecord shards {spec} ({len(train)} train shard(s), {split}; "
                     f"{len(y_tr) + len(y_te)} images)", named=names is not None)


class _RecordRows(RowSource):
    def rows(self, idx, split: str, shuffle=None):
        """The records at ``idx`` (positions within ``split``), in file order, or shuffled
        within 4,096 records when ``shuffle`` (an int64 seed, or a tensor of one:
        ``tfdata.shuffle_seed``) is given."""
        import tensorflow as tf
        d = self.data
        own = d.test_shards if split == "test" and d.test_shards else d.train_shards
        # positions of this split's rows among all the records of its shards
        if d.test_shards:
            total = len(d.y_test) if split == "test" else len(d.y_train)
            positions = np.arange(total)
        else:
            total = len(d.y_train) + len(d.y_test)
            held = np.arange(total) % HOLD_OUT_EVERY == 0
            positions = np.flatnonzero(held if split == "test" else ~held)
        keep = np.zeros(total, bool)
        keep[positions[np.asarray(idx, "int64")]] = True
        keep_t = tf.constant(keep)
        features = _features()
        relabel = tf.constant(d.label_map or (), tf.int64)

        def with_name(shard):
            return tf.data.TFRecordDataset(shard).map(lambda r: (shard, r))

        ds = tf.data.Dataset.from_tensor_slices(list(own)).flat_map(with_name).enumerate()
        ds = ds.filter(lambda i, rec: keep_t[i])
        if shuffle is not None:
            ds = ds.shuffle(min(len(idx), 4096), seed=shuffle, reshuffle_each_iteration=True)
        decode = decoder(self.net.input_shape, self.net.training.resize, self.bad,
                         from_bytes=True)

        def parse(i, rec):
            shard, raw = rec
            ex = tf.io.parse_single_example(raw, features)
            name = tf.strings.join([shard, "#record", tf.strings.as_string(i)])
            label = ex["label"] if d.label_map is None else tf.gather(relabel, ex["label"])
            return (*decode(ex["image"], name), label)

        ds = settled(drop_failed(ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)))
        return ds if self.bad.skip else ds.apply(
            tf.data.experimental.assert_cardinality(len(idx)))
