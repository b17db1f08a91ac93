"""A batch of image files → uint8 pixels inside the tf.data graph, with TensorFlow's JPEG
decoder for the files where it gives exactly Pillow's pixels, and Pillow for every other file.

A JPEG already at the net's input size, with as many components as the net has channels,
needs no resize, no mode conversion and no compositing: ``contract.preprocessing.image_bytes``
only decodes it. TensorFlow's ``decode_jpeg`` with ``dct_method="INTEGER_ACCURATE"`` runs the
same libjpeg-turbo decode as Pillow (the islow DCT and fancy upsampling are both libraries'
defaults), so its pixels are Pillow's (``tests/train/test_jpeg.py`` holds them equal to
serving's); and it runs in the graph, off the GIL: one epoch's 5,760 224×224 JPEGs decoded at
about 4,000 images/s, against 2,500-2,800 through Pillow on two calls (docs/benchmarks.md).

Every other file (another size or format, CMYK, a truncated or foreign file) goes to Pillow,
one Python call per batch. Only files that look whole take the fast path: JPEG's start and end
markers, then a header of the right size. A file that still fails TensorFlow's header reader
or decoder stops the run, and ``scan`` then finds and names it (``images.raise_for``).
"""
from __future__ import annotations

import os

from .tfdata import DECODE_CALLS, op_message, settled

SOI, EOI = b"\xff\xd8\xff", b"\xff\xd9"


def fast_path_for(input_shape, skip_bad_images: bool) -> bool:
    """Whether files may take the fast path: not while bad files are being skipped, since a
    file the graph cannot decode would stop the epoch instead of being counted."""
    return not skip_bad_images and input_shape[-1] in (1, 3) and len(input_shape) == 3


def _looks_whole(contents):
    """Start and end markers present (no graph op here raises on any string)."""
    import tensorflow as tf
    head = tf.strings.substr(contents, 0, 3) == SOI
    # two bytes prepended so a string shorter than two bytes still has a last two
    tail = tf.strings.substr(tf.strings.join([b"\0\0", contents]), -2, 2) == EOI
    return head & tail


def _at_size(contents, input_shape):
    """Per JPEG that looks whole: is its header's (height, width, components) the input's?"""
    import tensorflow as tf
    shapes = tf.map_fn(lambda s: tf.io.extract_jpeg_shape(s, output_type=tf.int32), contents,
                       fn_output_signature=tf.TensorSpec((3,), tf.int32))
    return tf.reduce_all(tf.equal(shapes, tf.constant(input_shape, tf.int32)), axis=1)


def split_fast(contents, input_shape):
    """A boolean per file: decode it in the graph (True) or with Pillow (False)."""
    import tensorflow as tf
    whole = _looks_whole(contents)
    where = tf.where(whole)[:, 0]
    sized = _at_size(tf.gather(contents, where), input_shape)
    return tf.scatter_nd(where[:, None], sized, tf.shape(whole, out_type=tf.int64))


def decode_fast(contents, input_shape):
    """JPEGs at the input size → (n, h, w, c) uint8, Pillow's pixels."""
    import tensorflow as tf
    h, w, c = input_shape
    return tf.map_fn(lambda s: tf.ensure_shape(tf.io.decode_jpeg(
        s, channels=c, dct_method="INTEGER_ACCURATE"), (h, w, c)), contents,
        fn_output_signature=tf.TensorSpec((h, w, c), tf.uint8))


def decode_batch(contents, names, input_shape, pillow, fast: bool):
    """Encoded files and their names → ((n, h, w, c) uint8 pixels, (n,) ok), in order.

    ``pillow`` is a Python function ``(contents, names) -> (pixels, ok)`` for a whole list;
    with ``fast`` the files ``split_fast`` picks are decoded in the graph instead.
    """
    import tensorflow as tf
    h, w, c = input_shape

    def by_pillow(data, labels):
        pixels, ok = tf.numpy_function(pillow, [data, labels], [tf.uint8, tf.bool],
                                       stateful=False)
        return tf.ensure_shape(pixels, (None, h, w, c)), tf.ensure_shape(ok, (None,))

    if not fast:
        return by_pillow(contents, names)
    quick = split_fast(contents, input_shape)
    at_q = tf.cast(tf.where(quick)[:, 0], tf.int32)
    at_p = tf.cast(tf.where(~quick)[:, 0], tf.int32)
    pixels_q = decode_fast(tf.gather(contents, at_q), input_shape)
    pixels_p, ok_p = by_pillow(tf.gather(contents, at_p), tf.gather(names, at_p))
    pixels = tf.dynamic_stitch([at_q, at_p], [pixels_q, pixels_p])
    ok = tf.dynamic_stitch([at_q, at_p], [tf.ones_like(at_q, tf.bool), ok_p])
    return tf.ensure_shape(pixels, (None, h, w, c)), ok


def scan(paths, input_shape, bad) -> None:
    """Find a file the fast path cannot decode and record it in ``bad`` (the run then stops
    with an error naming it): every file through the same ops in a parallel tf.data pass that
    drops the ones that fail, then the first missing one again, alone, for the reason."""
    import numpy as np
    import tensorflow as tf

    def decoded_size(path):
        contents = tf.io.read_file(path)[None]
        return tf.cond(split_fast(contents, input_shape)[0],
                       lambda: tf.size(decode_fast(contents, input_shape)),
                       lambda: tf.constant(0))

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).enumerate()
    ds = settled(ds.map(lambda i, path: (i, decoded_size(path)), num_parallel_calls=DECODE_CALLS))
    seen = np.zeros(len(paths), bool)
    for i, _ in ds.ignore_errors().as_numpy_iterator():
        seen[i] = True
    for i in np.flatnonzero(~seen)[:1]:
        try:
            decoded_size(tf.constant(paths[i]))
        except tf.errors.OpError as exc:
            bad.add(os.fsdecode(paths[i]),
                    ValueError(f"TensorFlow's JPEG decoder: {op_message(exc)}"))

