"""The tf.data helpers every streamed source shares: fixed parallelism, no autotuning thread,
a shuffle seed from an epoch's key, the skipped-image filter, and TensorFlow's error text.

A leaf: it imports nothing of ``cnnbp.train``, so the readers (``jpeg``, ``images``,
``tfrecords``, ``file_rows``, ``rows``) and the pipeline that assembles them all import it and
none of them imports another to reach these.
"""
from __future__ import annotations

import os
import re

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


def shuffle_seed(key):
    """A ``Dataset.shuffle`` seed (an int64 scalar) from an epoch's key."""
    import tensorflow as tf
    return tf.random.stateless_uniform([], key, 0, 2 ** 62, dtype=tf.int64)


def drop_failed(ds):
    """(pixels, ok, label) → (pixels, label), dropping what failed to decode: the elements
    ``--skip-bad-images`` leaves out of a stream, counted in ``BadImages``."""
    def good(x, ok, y):
        return ok

    def drop_flag(x, ok, y):
        return x, y

    return ds.filter(good).map(drop_flag)


def op_message(exc) -> str:
    """A TensorFlow error's own words, without the traceback, node names and ``[Op:...]``."""
    lines = [line.strip() for line in (exc.message or str(exc)).splitlines()
             if line.strip() and not line.strip().startswith("[[")]  # graph node notes
    text = re.sub(r"^\w+Error: ", "", lines[-1] if lines else type(exc).__name__)
    text = re.sub(r"\{\{.*?\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:.*$", "", text)
