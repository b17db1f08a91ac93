"""Arrays → Keras ``PyDataset`` batches: the input path for Keras backends other than
TensorFlow (JAX), which needs no TensorFlow installed.

Batches are normalised as they are drawn, so a memory-mapped ``.npz`` is never copied whole;
the training rows are reshuffled every epoch, and augmentation (the same settings as the tf.data
path) runs on each batch, both drawn from the run's seed and the epoch alone, so a resumed run
draws what the same run never interrupted drew.
"""
from __future__ import annotations

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract.preprocessing import Preprocessing

# Ready batches (one gather each) smaller than this are drawn by the training loop itself.
# Keras's threaded enqueuer costs every epoch: it starts a pool, hands batches over through
# queues under the GIL, and its stop waits out a 0.1 s queue timeout (110-160 ms an epoch of
# 96 cifar10_small batches here). On an H200 it held cifar10_small (3 MB batches) at 0.77x a
# hand-written fit, 1.15-1.17x drawn by the loop; but VGG-11's 38.5 MB batches drawn by the
# loop held bfloat16 at 3,952 images/s against 6,225 on threads (docs/benchmarks.md, issue
# 28). Sizes between the two were not measured.
LOOP_DRAWN = 8 * 2**20


def batches(x, y, rows, batch: int, prep: Preprocessing, net: ir.Network, mapped: bool,
            seed: int | None = None, augment=None, workers: int = 1):
    """A ``PyDataset`` of (model input, one-hot label) batches of ``x[rows]``; shuffled every
    epoch when ``seed`` is given (``set(epoch)`` as an epoch begins, else one epoch on at each
    ``on_epoch_end``). ``mapped`` arrays hold raw values and are normalised a batch at a
    time; the rest are already divided by ``prep.scale`` and have their ``rows`` normalised
    once, into a copy. ``workers`` threads draw the batches that take work: normalised or
    augmented as drawn, or large (``LOOP_DRAWN``); the rest the training loop draws itself."""
    import keras

    if not mapped and augment is None and batch * np.prod(net.input_shape) * 4 < LOOP_DRAWN:
        workers = 1

    # one multiply and one add into one new array: ``prep.apply`` took five passes and five
    # arrays, which at 64x224x224x3 held a GPU at 0.68x the Keras fit fed ready arrays
    # (docs/benchmarks.md); mapped arrays hold raw values, the rest are divided by scale.
    # The per-channel constants are spread over a whole row, so numpy's inner loop runs along
    # the row rather than over 3 channels: the same float32 operations, 6x faster on a
    # 64x224x224x3 batch of pixels (issue 28).
    gain, shift = (np.broadcast_to(c, tuple(net.input_shape)).ravel()
                   for c in prep.gain_shift(1.0 if mapped else prep.scale))

    def model_input(raw):
        rows = raw.reshape(len(raw), -1)
        out = np.empty(rows.shape, "float32")
        np.multiply(rows, gain, out=out)
        return np.add(out, shift, out=out).reshape(raw.shape)

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False)
            self.rows = np.asarray(rows, "int64")
            self.eye = np.eye(net.classes, dtype="float32")
            self.ready = None
            if not mapped:  # held in memory: its rows normalised once, as a hand-written
                # script does before fit; a batch is then one gather (issue 28). The same
                # float32 operations as per batch, so the same values.
                self.ready = model_input(np.asarray(x)[np.sort(self.rows)])
                self.place = np.zeros(len(x), "int64")  # row of x -> row of ready
                self.place[np.sort(self.rows)] = np.arange(len(self.rows))
            self.set(0)

        def set(self, epoch: int) -> None:
            self.epoch = epoch
            self.order = self.rows if seed is None else \
                np.random.default_rng((seed, epoch)).permutation(self.rows)

        def __len__(self):
            return -(-len(self.rows) // batch)

        def __getitem__(self, i):
            take = np.sort(self.order[i * batch:(i + 1) * batch])  # sequential reads of a map
            inputs = model_input(x[take]) if self.ready is None else \
                self.ready[self.place[take]]
            if augment is not None:
                inputs = augment(inputs, np.random.default_rng((seed or 0, i, self.epoch)))
            return inputs, self.eye[y[take]]

        def on_epoch_end(self):
            self.set(self.epoch + 1)

        def __iter__(self):  # a plain pass, for evaluation
            return (self[i] for i in range(len(self)))

    return ArrayBatches()
