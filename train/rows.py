"""Streamed data → tf.data elements by index: the ``RowSource`` every streamed kind of data
implements (``file_rows.FileRows``, ``tfrecords``'s records), and the rows of a memory map.

It knows no kind of source by name (``pipeline.row_source`` picks one), so the sources that
subclass it import it without importing each other.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnbp.builder import ir

from .tfdata import settled

if TYPE_CHECKING:
    from .images import BadImages


class RowSource:
    """Rows of one kind of streamed data, by index, as (pixels or values, label) elements.

    ``itemsize`` is the bytes of one decoded value: 1 for pixels (files, records), the
    array's own for a memory map (``ArrayRows``).
    """

    itemsize = 1

    def __init__(self, data, net: ir.Network, bad: BadImages):
        self.data, self.net, self.bad = data, net, bad
        self.row_bytes = int(np.prod(tuple(net.input_shape))) * self.itemsize
        self.train_count, self.test_count = len(data.y_train), len(data.y_test)

    def chunks(self, idx, split: str):
        """Batches of (values, label) rows for one pass in order (the statistics)."""
        return self.rows(idx, split).batch(256)


class ArrayRows(RowSource):
    """Rows gathered from a memory map a few at a time (sorted, so reads stay sequential)."""

    def __init__(self, data, net: ir.Network, bad: BadImages):
        self.itemsize = np.dtype(data.x_train.dtype).itemsize
        super().__init__(data, net, bad)

    def rows(self, idx, split: str, shuffle=None):
        """The rows at ``idx``, in a full shuffle when ``shuffle`` (an int64 seed, or a tensor
        of one: ``tfdata.shuffle_seed``) is given."""
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
