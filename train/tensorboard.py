"""``--tensorboard``: ``RUN/tensorboard`` as TensorBoard users expect it.

Keras's callback writes the scalars and, each epoch, a histogram of every weight (``train`` and
``validation``); after the run, ``write_model`` adds to ``train`` a graph of the forward pass
that the Graph tab opens, a batch of training inputs and the run's charts (curves, confusion
matrix) as images. A resumed run appends to the same logs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import RunDir

LOGS = "tensorboard"
INPUTS = 16  # training rows in the image of a batch
log = logging.getLogger("cnnbp.train")


def keras_callback(run: RunDir):
    """Keras's TensorBoard callback with weight histograms every epoch. ``write_graph=False``:
    Keras 3 writes its model config under the tag ``keras``, which the Graph tab reads as a
    GraphDef and calls malformed; ``write_model`` writes a real graph instead."""
    import keras
    return keras.callbacks.TensorBoard(str(run / LOGS), histogram_freq=1, write_graph=False)


def write_model(run: RunDir, model, prep: Preprocessing, pictures: dict[str, bytes | None],
                step: int) -> Path:
    """``RUN/tensorboard/train`` (Keras's writer is closed by then): the forward pass's graph,
    ``INPUTS`` training rows as the images (or curves) they were before normalisation, and
    ``pictures`` (name → PNG bytes, None for one not drawn) as images at ``step`` (the last
    epoch)."""
    import tensorflow as tf

    from cnnbp.report.figures import training_grid
    folder = run / LOGS / "train"
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        graph = forward_graph(model)
        if graph is not None:
            tf.summary.graph(graph)
        samples = run.read_samples(prep.input_shape)
        if samples is not None and len(samples[2]):
            pictures = {"inputs/training batch": training_grid(samples[2][:INPUTS], prep),
                        **pictures}
        for name, png in pictures.items():
            if png is not None:
                tf.summary.image(name, tf.image.decode_png(png, channels=3)[None], step=step)
    writer.close()
    return folder


def forward_graph(model):
    """The model's inference pass traced into a ``tf.Graph`` (None on another backend)."""
    import keras
    if keras.backend.backend() != "tensorflow":
        log.info("tensorboard: no graph on the %s backend", keras.backend.backend())
        return None
    import tensorflow as tf
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="input")
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
