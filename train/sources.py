"""Data sources → NumPy arrays: digits, mnist1d, an image folder, a .npz, Keras online sets.

Nothing downloads unless the user names an online dataset; offline, that fails fast.
The kinds live apart: ``builtin`` (named sets), ``array_files`` (.npz, .npy), ``folders``
(image folders), ``tfrecords`` (shards); ``class_match`` checks any of them against the net.
"""
from __future__ import annotations

from pathlib import Path

from . import array_files, builtin, folders
from .builtin import ONLINE
from .class_match import check_against, match_names
from .data import Dataset, ImageFiles
from .labels import fail

__all__ = ["Dataset", "ImageFiles", "check_against", "load_source", "match_names", "preload"]


def load_source(spec: str, input_shape: tuple[int, ...] | None = None,
                classes: int | None = None) -> Dataset:
    """Load ``spec``: a built-in name, an online name, a ``.npz`` file, a folder of ``.npy``
    files, TFRecord shards, or an image folder.

    Arrays come back as a ``Dataset`` (memory-mapped where the file allows); an image folder
    and TFRecord shards come back as file lists that tf.data decodes as it streams.
    ``input_shape`` (the net's) sizes the images; ``classes`` (the net's) bounds the labels of
    data that does not name its classes, so a bad one is named with its file, key and index.
    """
    kept = _PRELOADED.pop((spec, _key(input_shape), classes), None)
    if kept is not None:
        return kept
    if spec == "digits":
        return builtin.digits()
    if spec == "mnist1d":
        return builtin.mnist1d()
    if spec in ONLINE:
        return builtin.online(spec)
    path = Path(spec)
    if path.suffix == ".npz" and path.is_file():
        return array_files.npz(path, classes)
    if path.is_dir() and (path / "x_train.npy").is_file():
        return array_files.npy_folder(path, classes)
    if path.is_dir():
        return folders.folder(path, input_shape)
    if any(ch in spec for ch in "*?[") or path.suffix in (".tfrecord", ".tfrecords"):
        from .tfrecords import tfrecord_source
        return tfrecord_source(spec, input_shape, classes)
    if path.suffix == ".npz" or not path.parent.is_dir():
        raise fail(f"{spec} does not exist; give the path of a .npz file, a folder of images "
                   "or of .npy files, or TFRecord shards ('shards/*.tfrecord')")
    from cnnbp.builder.tokens import suggest
    raise fail(f"{spec!r} is not a data source{suggest(spec, ('digits', 'mnist1d', *ONLINE))}: "
               f"use digits, mnist1d, {', '.join(ONLINE)} "
               "(downloads), a .npz file with x_train, y_train, x_test, y_test (or a folder of "
               "those four as .npy files), TFRecord shards ('shards/*.tfrecord'), or a folder "
               "with one sub-folder of PNG/JPEG images per class")


# What ``preload`` loaded and checked, taken by the next ``load_source`` of the same spec: the
# CLI reads and checks the data before TensorFlow starts, and training then uses that copy
# (a memory map's NaN scan and a compressed .npz's inflation are not done twice).
_PRELOADED: dict[tuple, object] = {}


def _key(input_shape) -> tuple | None:
    return None if input_shape is None else tuple(input_shape)


def preload(spec: str, input_shape: tuple[int, ...], classes: int,
            class_names: tuple[str, ...] = ()) -> None:
    """Every problem with ``--data`` that needs no TensorFlow, found before it starts: a
    missing or unreadable file, missing keys, the shape, bad labels or values, class names.

    Online sets (Keras downloads them) and TFRecord labels (tf.data reads them) are checked
    later, when training loads them; TFRecord shards' names and ``classes.txt`` are checked
    here.
    """
    _PRELOADED.clear()
    if spec in ONLINE:  # reachable, or cached; its shape and names are checked once loaded
        builtin.reachable(spec)
        return
    path = Path(spec)
    local = (path.suffix == ".npz" and path.is_file()) or path.is_dir()
    if not local and (any(ch in spec for ch in "*?[") or
                      path.suffix in (".tfrecord", ".tfrecords")):
        from .tfrecords import shards
        found = shards(spec, input_shape)
        if found.names is not None:
            match_names(found.names, tuple(class_names), classes, spec)
        return
    data = load_source(spec, input_shape, classes)
    check_against(data, input_shape, classes, class_names)
    _PRELOADED[(spec, _key(input_shape), classes)] = data
