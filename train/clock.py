"""The run's seed and the current epoch → each epoch's key, from which the training stream's
order and augmentation are drawn (so a resumed run draws what an uninterrupted one did)."""
from __future__ import annotations

from .tfdata import shuffle_seed


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
        """Make ``epoch`` the one the next pass over the stream draws for."""
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
