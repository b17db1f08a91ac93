"""Image files (or encoded records) → uint8 pixels inside tf.data, through the one shared
``contract.preprocessing.image_bytes``, so training sees exactly what serving will.

Decoding runs in Python (``tf.numpy_function``) on tf.data's parallel threads: Pillow releases
the GIL while it decodes and resamples, so the threads overlap. TensorFlow's own decoders
resample differently from serving; only where no resampling is needed does ``train.jpeg`` use
TensorFlow's JPEG decoder instead.

A file that cannot be decoded is recorded in ``BadImages``; without ``skip`` the first one
stops training with a ``DataError`` naming it (``raise_for`` turns tf.data's wrapped error into
that), with ``skip`` it is dropped from the stream and counted.
"""
from __future__ import annotations

import io
import os
import threading
from contextlib import contextmanager

import numpy as np

from cnnbp.contract.errors import DataError
from cnnbp.contract.preprocessing import image_bytes

from .jpeg import scan
from .tfdata import op_message

MAX_NAMED = 20  # skipped files listed by name in metrics.json; the count is always exact


class BadImage(Exception):
    """Raised inside the decode function when bad images are not being skipped."""


class BadImages:
    """Which files failed to decode, and why; shared by every pipeline of one run."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.files: dict[str, str] = {}
        self.decoded = 0  # files Pillow decoded (tests count cache hits with it)
        # input shape -> the files (an ordered set) that took train.jpeg's fast path, searched
        # for the one TensorFlow's decoder stopped on, since tf.data's error does not name it
        self.scans: dict[tuple, dict] = {}
        self._lock = threading.Lock()

    def add(self, name: str, exc: BaseException) -> None:
        """Record that ``name`` failed to decode with ``exc`` (the first reason is kept)."""
        reason = f"{type(exc).__name__}: {exc}".strip()
        with self._lock:
            self.files.setdefault(name, reason)

    def error(self) -> DataError:
        """The ``DataError`` naming the first bad file, raised when bad files are not skipped."""
        with self._lock:  # decode threads may still be adding
            name, reason = next(iter(self.files.items()))
        return DataError(f"--data: {name} is not a readable image ({reason}); fix or remove "
                         "it, or train with --skip-bad-images (training.skip_bad_images: true) "
                         "to skip such files and count them in metrics.json")

    def count_decoded(self) -> None:
        """Count one file decoded by Pillow (thread-safe)."""
        with self._lock:
            self.decoded += 1

    @property
    def named(self) -> list[str]:
        """The skipped files listed by name in metrics.json (the first ``MAX_NAMED``)."""
        return sorted(self.files)[:MAX_NAMED]


def pixel_decoder(input_shape, resize: str, bad: BadImages, from_bytes: bool = False):
    """A Python function ``(path or bytes, name) -> (uint8 HxWxC pixels, ok)``: one file through
    the shared ``image_pixels``; a bad file is recorded, and raises unless skipped."""
    from PIL import Image

    h, w, c = input_shape
    blank = np.zeros((h, w, c), "uint8")

    def decode(source, name):
        name = os.fsdecode(name)
        try:
            opened = Image.open(io.BytesIO(source) if from_bytes else os.fsdecode(source))
            with opened as im:
                pixels = image_bytes(im, input_shape, resize)
        except Exception as exc:  # PIL raises many kinds for damaged or foreign files
            bad.add(name, exc)
            if not bad.skip:
                raise BadImage(name) from None
            return blank, False
        bad.count_decoded()
        return pixels, True

    return decode


def decoder(input_shape, resize: str, bad: BadImages, from_bytes: bool = False):
    """A tf function ``(path or bytes, name) -> (uint8 HxWxC pixels, ok)`` for ``Dataset.map``."""
    import tensorflow as tf

    h, w, c = input_shape
    decode = pixel_decoder(input_shape, resize, bad, from_bytes)

    def decode_many(sources, names):
        out = [decode(s, n) for s, n in zip(sources, names)]
        if not out:
            return np.zeros((0, h, w, c), "uint8"), np.zeros((0,), bool)
        return np.stack([p for p, _ in out]), np.array([ok for _, ok in out])

    def fn(source, name):
        """One element, or a batch of them (one Python call per batch: less overhead)."""
        batched = source.shape.rank == 1
        pixels, ok = tf.numpy_function(decode_many if batched else decode, [source, name],
                                       [tf.uint8, tf.bool], stateful=False)
        pixels.set_shape(((None,) if batched else ()) + (h, w, c))
        ok.set_shape((None,) if batched else ())
        return pixels, ok

    return fn


@contextmanager
def raise_for(bad: BadImages):
    """Turn tf.data's wrapped error from a bad image into the ``DataError`` that names it."""
    import sys
    tf = sys.modules.get("tensorflow")  # only tf.data wraps errors; other backends need no TF
    wrapped = (BadImage, tf.errors.OpError) if tf is not None else (BadImage,)
    try:
        yield
    except wrapped as exc:
        if tf is not None and isinstance(exc, (tf.errors.NotFoundError,
                                               tf.errors.PermissionDeniedError)):
            raise DataError(f"--data: {_unreadable(exc)} cannot be read (it was listed when the "
                            "run started: moved, deleted or made unreadable since?); put it "
                            "back, or start the run again so the listing leaves it out") from None
        if not bad.files and not bad.skip and "jpeg" in str(exc).lower() and \
                isinstance(exc, tf.errors.InvalidArgumentError):
            for shape, paths in bad.scans.items():
                if not bad.files:
                    scan(list(paths), shape, bad)
        if bad.files and not bad.skip:
            raise bad.error() from None
        raise


def _unreadable(exc) -> str:
    """The path in TensorFlow's ``ReadFile`` error: ``... ParallelMapV2: PATH; No such file``."""
    return op_message(exc).split("; ", 1)[0].rsplit(": ", 1)[-1]
