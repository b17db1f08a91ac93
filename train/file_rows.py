"""An image folder's files → batches of uint8 pixels in tf.data: each batch decoded by one call
(``jpeg.decode_batch``: TensorFlow's decoder where it equals Pillow, else Pillow) and kept in
a ``cache.PixelStore`` from which later epochs read it back.
"""
from __future__ import annotations

import os

import numpy as np

from . import jpeg
from .cache import PixelStore
from .clock import EpochClock
from .images import pixel_decoder
from .rows import RowSource
from .tfdata import DECODE_CALLS, settled


class FileRows(RowSource):
    """An image folder's files, by their place in a split, decoded a batch at a time."""

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
        """Batches of (uint8 pixels, label) for one pass in order (the statistics), batched as
        decoded: no unbatch and rebatch."""
        return self.batches(idx, split, 64)  # batched as decoded: no unbatch and rebatch
