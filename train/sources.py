"""Data sources → NumPy arrays: digits, mnist1d, an image folder, a .npz, Keras online sets.

Nothing downloads unless the user names an online dataset; offline, that fails fast.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .labels import check_labels, fail, listed
from .labels import class_names as class_names_of

ONLINE = ("mnist", "fashion_mnist", "cifar10")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Where Keras fetches its datasets; CNNBP_DATASET_HOST overrides it (tests use a closed
# loopback port, so they never send traffic off the machine).
DATASET_HOST = "storage.googleapis.com:443"


@dataclass(frozen=True)
class Dataset:
    """Arrays channels-last, labels as class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    scale: float = 1.0  # raw values were divided by this (16 for digits, 255 for images)
    raw_max: float | None = None  # the raw value of full white; None: not images
    named: bool = False  # class_names came with the data (else they are numbered here)


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
        return _digits()
    if spec == "mnist1d":
        return _mnist1d()
    if spec in ONLINE:
        return _online(spec)
    path = Path(spec)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path, classes)
    if path.is_dir() and (path / "x_train.npy").is_file():
        return _npy_folder(path, classes)
    if path.is_dir():
        return _folder(path, input_shape)
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
        _reachable(spec)
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


def _split(x, y, seed=0, test_fraction=0.2):
    """A seeded split, stratified by class whenever every class can give to both sides."""
    from sklearn.model_selection import train_test_split
    try:
        return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    except ValueError:  # a class with a single sample, or fewer test rows than classes
        return train_test_split(x, y, test_size=test_fraction, random_state=seed)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]  # 16 gray levels -> [0, 1]
    x_tr, x_te, y_tr, y_te = _split(x, d.target.astype("int64"))
    return Dataset(x_tr, y_tr, x_te, y_te, tuple(str(n) for n in d.target_names),
                   "scikit-learn load_digits (1,797 8x8 images), stratified 80/20 split, seed 0",
                   16.0, 16.0)


def _mnist1d() -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset
    state = np.random.get_state()  # make_dataset reseeds NumPy's global generator
    try:
        d = make_dataset(get_dataset_args())  # generated locally; get_dataset would download
    finally:
        np.random.set_state(state)
    prep = lambda a: a.astype("float32")[..., None]
    return Dataset(prep(d["x"]), d["y"].astype("int64"), prep(d["x_test"]),
                   d["y_test"].astype("int64"), tuple(str(i) for i in range(10)),
                   "MNIST-1D generated by mnist1d.make_dataset (seed 42): 4,000 train, 1,000 test")


def _reachable(name: str) -> None:
    """Refuse an online set that is neither in Keras's cache nor reachable, without Keras."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    cached = any(cache.glob(f"{name}*")) or (name == "cifar10" and any(cache.glob("cifar-10*")))
    if not cached:
        host, _, port = os.environ.get("CNNBP_DATASET_HOST", DATASET_HOST).rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as exc:
            raise fail(f"{name} must be downloaded from {host} and this machine cannot reach it "
                       f"({exc.strerror or exc}); use digits, mnist1d, a .npz or an image folder "
                       f"offline, or copy the Keras cache into {cache}") from None


def _online(name: str) -> Dataset:
    _reachable(name)
    import keras
    (x_tr, y_tr), (x_te, y_te) = getattr(keras.datasets, name).load_data()
    names = {"cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                         "horse", "ship", "truck"),
             "fashion_mnist": ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
                               "shirt", "sneaker", "bag", "ankle boot")}.get(
        name, tuple(str(i) for i in range(10)))
    prep = lambda a: (a.astype("float32") / 255.0).reshape(a.shape + ((1,) if a.ndim == 3 else ()))
    return Dataset(prep(x_tr), y_tr.reshape(-1).astype("int64"), prep(x_te),
                   y_te.reshape(-1).astype("int64"), names, f"keras.datasets.{name}", 255.0, 255.0,
                   named=name != "mnist")


def _npz(path: Path, classes: int | None) -> Dataset:
    try:
        open(path, "rb").close()
    except OSError as exc:
        raise fail(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") \
            from None
    if not zipfile.is_zipfile(path):  # else np.load would take it for a pickle
        raise fail(f"{path} is not a .npz file (a .npz is a zip archive, as numpy.savez "
                   "writes it); save the arrays with np.savez(path, x_train=..., y_train=..., "
                   "x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if {"x", "y"} <= files and not files & {"x_train", "x_test"}:
                # one set: split it like an image folder (20% test, stratified, seeded)
                arrays = {k: z[k] for k in files}
                x, y = arrays.pop("x"), arrays.pop("y")
                rows = [len(a) if a.ndim else 0 for a in (x, y)]
                if rows[0] != rows[1] or rows[0] < 2:
                    raise fail(f"{path}: x has {rows[0]} rows and y has {rows[1]}; splitting "
                               "them 80/20 needs as many labels as rows, and 2 rows or more")
                where = lambda k: f"{path}: {k}"
                if x.dtype.kind == "f":  # a bad value named by its row in the file
                    _bounds(x, where("x"))
                x_tr, x_te, y_tr, y_te = _split(x, _labels(y, where("y"),
                                                           *_limit(arrays, where, classes)))
                return _arrays({**arrays, "x_train": x_tr, "y_train": y_tr, "x_test": x_te,
                                "y_test": y_te}, f"{path} (x, y split 80/20)",
                               lambda k: f"{path}: {k} (split from x, y)", classes)
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in files]
            if missing:
                raise fail(f"{path} lacks {', '.join(missing)}; it needs x_train, y_train, "
                           "x_test, y_test, or just x and y to split (and optionally "
                           "class_names)")
            arrays = {k: _mapped_member(path, k) for k in ("x_train", "x_test")}
            arrays.update({k: z[k] for k in files if k not in arrays})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise fail(f"{path} is not a readable .npz file: {exc}") from None
    return _arrays(arrays, f"{path}", lambda k: f"{path}: {k}", classes)


def _npy_folder(path: Path, classes: int | None) -> Dataset:
    """A folder of x_train.npy, y_train.npy, x_test.npy, y_test.npy, each memory-mapped."""
    arrays = {}
    for k in ("x_train", "y_train", "x_test", "y_test"):
        try:
            arrays[k] = np.load(path / f"{k}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise fail(f"{path / (k + '.npy')} is not a readable .npy file: {exc}") from None
    names = path / "class_names.txt"
    if names.is_file():
        arrays["class_names"] = np.array(names.read_text(encoding="utf-8").splitlines())
    return _arrays(arrays, f"{path}", lambda k: f"{path / k}" + (
        ".txt" if k == "class_names" else ".npy"), classes)


def _mapped_member(path: Path, key: str) -> np.ndarray:
    """``key`` of an .npz as a read-only memory map when it is stored uncompressed
    (``np.savez``), else read into memory (``np.savez_compressed``)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        stored = info.compress_type == zipfile.ZIP_STORED
    if stored:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if not dtype.hasobject:
                return np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                                 order="F" if fortran else "C")
    with np.load(path, allow_pickle=False) as z:
        return z[key]


def _arrays(arrays: dict, source: str, where: Callable[[str], str],
            classes: int | None) -> Dataset:
    """Four arrays (possibly memory-mapped, left in their own dtype) → a checked Dataset.
    ``where(key)`` names an array in messages (``data.npz: y_train``)."""
    x_tr, x_te = arrays["x_train"], arrays["x_test"]
    if x_tr.dtype.kind not in "fui" or x_te.dtype.kind not in "fui":
        raise fail(f"{source}: x_train and x_test must hold numbers (found {x_tr.dtype}, "
                   f"{x_te.dtype})")
    for key, x in (("x_train", x_tr), ("x_test", x_te)):
        if not x.ndim or not len(x):
            raise fail(f"{where(key)} has no rows (shape {list(x.shape)}): training needs "
                       "at least one training and one test sample")
    # Only floats can hold NaN, and only their range decides raw_max: integer arrays (a large
    # memory-mapped uint8 set, read again on every resume) are not scanned.
    floats = x_tr.dtype.kind == x_te.dtype.kind == "f"
    bounds = [_bounds(x, where(k)) for k, x in (("x_train", x_tr), ("x_test", x_te))
              if x.dtype.kind == "f"]
    raw_max = 255.0 if x_tr.dtype == x_te.dtype == np.uint8 else \
        1.0 if floats and all(lo >= 0 and hi <= 1 for lo, hi in bounds) else None
    if not isinstance(x_tr, np.memmap):  # in memory already: float32 as before
        x_tr, x_te = x_tr.astype("float32"), np.asarray(x_te).astype("float32")
    names = class_names_of(arrays["class_names"], where("class_names")) \
        if "class_names" in arrays else None
    limit = _limit(arrays, where, classes)
    y_tr, y_te = (_labels(arrays[k], where(k), *limit) for k in ("y_train", "y_test"))
    for label, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if len(x) != len(y):
            raise fail(f"{source}: x_{label} has {len(x)} samples but y_{label} has {len(y)}")
    if x_tr.ndim == 3 and x_tr.shape[-1] not in (1, 3):  # (n, H, W) images
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    elif x_tr.ndim == 2:  # (n, L) signals
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    count = int(max(y_tr.max(), y_te.max())) + 1
    mapped = isinstance(x_tr, np.memmap) or isinstance(getattr(x_tr, "base", None), np.memmap)
    return Dataset(x_tr, y_tr, x_te, y_te, names or tuple(str(i) for i in range(count)),
                   source + (" (memory-mapped)" if mapped else ""), 1.0,
                   raw_max if x_tr.ndim == 4 else None, names is not None)


def _limit(arrays: dict, where: Callable[[str], str], classes: int | None
           ) -> tuple[int | None, str]:
    """(labels must stay below this, and why) for arrays: their class names' count, else the
    net's classes, else unbounded (only negative labels are refused)."""
    if "class_names" in arrays:
        n = np.asarray(arrays["class_names"]).size
        return n, f"{where('class_names')} names {n} classes"
    if classes is not None:
        return classes, f"the blueprint has classes: {classes}"
    return None, ""


def _labels(y, where: str, limit: int | None = None, why: str = "") -> np.ndarray:
    """Class indices from indices, a column of them, or one-hot rows; the first label that is
    not a whole number in ``0 .. limit-1`` is refused, named by its index."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise fail(f"{where} holds {y.dtype} values; labels must be class indices (whole "
                   "numbers from 0) or one-hot rows")
    if not y.ndim:
        raise fail(f"{where} is a single value ({y!r}), not one label a sample")
    if y.ndim == 2 and y.shape[1] > 1:
        one_hot = np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not one_hot:
            raise fail(f"{where} has shape {list(y.shape)}: neither class indices (one a "
                       "sample) nor one-hot rows (a single 1 a row)")
        y = y.argmax(axis=1)  # one-hot, as Keras's to_categorical makes
    elif y.ndim > 1 and y.size != len(y):
        raise fail(f"{where} has shape {list(y.shape)}; give one class index a sample")
    y = y.reshape(-1)
    check_labels(y, where, limit, why)
    return y.astype("int64")


def _bounds(a: np.ndarray, where: str, chunk: int = 1 << 22) -> tuple[float, float]:
    """(min, max) of an array read in chunks, so a memory map is never copied whole; a NaN or
    infinite value is refused, named by its row and position."""
    if not a.size:
        return 0.0, 0.0
    flat = a.reshape(len(a), -1) if a.ndim > 1 else a.reshape(-1, 1)
    rows = max(1, chunk // max(1, flat.shape[1]))
    lo, hi = np.inf, -np.inf
    for i in range(0, len(flat), rows):
        part = np.asarray(flat[i:i + rows])
        low, high = float(part.min()), float(part.max())
        if part.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
            row, col = np.unravel_index(int(np.argmax(~np.isfinite(part))), part.shape)
            value = part[row, col].item()
            at = (i + int(row), *map(int, np.unravel_index(col, a.shape[1:])))
            raise fail(f"{where}[{', '.join(map(str, at))}] is {value!r}: samples must be "
                       "finite numbers (a NaN or an infinity makes every loss after it NaN); "
                       f"fix or drop row {at[0]} before training")
        lo, hi = min(lo, low), max(hi, high)
    return lo, hi


@dataclass(frozen=True)
class ImageFiles:
    """An image folder as a file list: decoded later, in parallel, inside tf.data."""

    train_files: tuple[str, ...]
    train_labels: np.ndarray
    test_files: tuple[str, ...]
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    scale: float = 255.0
    raw_max: float | None = 255.0
    named: bool = True  # the class folders name the classes

    @property
    def y_train(self) -> np.ndarray:
        """The training labels, under the name array data sets use."""
        return self.train_labels

    @property
    def y_test(self) -> np.ndarray:
        """The test labels, under the name array data sets use."""
        return self.test_labels


def _list_images(folder: Path, classes: list[str], required: bool):
    """(paths, labels, ignored count) of one split; a class folder without images is an error
    in the training split (its class could never be learnt)."""
    files, labels, ignored = [], [], 0
    for label, name in enumerate(classes):
        sub = folder / name
        found = []
        if sub.is_dir():
            for entry in sorted(os.scandir(sub), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                    found.append(entry.path)
                else:
                    ignored += 1
        if required and not found:
            raise fail(f"class folder {sub} has no images (files ending in "
                       f"{', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder")
        files += found
        labels += [label] * len(found)
    return files, np.array(labels, "int64"), ignored


def _folder(path: Path, input_shape) -> ImageFiles:
    """Gather the file list and labels; split off a stratified, seeded test set unless the
    folder has its own ``test/``. No pixel is decoded here."""
    root = path / "train" if (path / "train").is_dir() else path
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise fail(f"{root} must hold one sub-folder of images per class (found "
                   f"{len(classes)} sub-folder(s))")
    if input_shape is None or len(input_shape) != 3:
        raise fail(f"an image folder needs a 2-D net (input HxWxC); this one takes "
                   f"{input_shape}")
    h, w, c = input_shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise fail(f"images can be loaded as 1 (gray) or 3 (RGB) channels; the net takes {c}")
    files, labels, ignored = _list_images(root, classes, required=True)
    if (path / "test").is_dir():
        extra = sorted(p.name for p in (path / "test").iterdir()
                       if p.is_dir() and not p.name.startswith(".") and p.name not in classes)
        if extra:
            raise fail(f"{path / 'test'} has class folder(s) {', '.join(extra)} that "
                       f"{root} lacks; test classes must be training classes")
        te_files, te_labels, more = _list_images(path / "test", classes, required=False)
        ignored += more
        tr_files, tr_labels = files, labels
        if not te_files:
            raise fail(f"{path / 'test'} has no images in its class folders")
    else:
        idx = np.arange(len(files))
        tr, te, tr_labels, te_labels = _split(idx, labels)
        tr_files, te_files = [files[i] for i in tr], [files[i] for i in te]
    note = f", {ignored} other file(s) ignored" if ignored else ""
    return ImageFiles(tuple(tr_files), tr_labels, tuple(te_files), te_labels, tuple(classes),
                      f"image folder {path} ({len(tr_files) + len(te_files)} images resized "
                      f"to {h}x{w}, {mode}{note})")


def check_against(data, input_shape: tuple[int, ...], classes: int,
                  class_names: tuple[str, ...] = ()):
    """Refuse data whose sample shape or classes do not fit the net; return it with its labels
    numbered in the order of the model's outputs (``class_names``' order when given)."""
    shape = tuple(data.x_train.shape[1:]) if isinstance(data, Dataset) else tuple(input_shape)
    if shape != tuple(input_shape):
        if len(shape) == 3 and (shape[1], shape[2], shape[0]) == tuple(input_shape):
            raise fail(f"{data.source}: samples are {'x'.join(map(str, shape))}, which looks "
                       f"channels-first (CxHxW); this tool takes channels last (HxWxC, the "
                       f"blueprint's {'x'.join(map(str, input_shape))}): transpose the arrays "
                       "with x.transpose(0, 2, 3, 1) and save them again")
        raise fail(f"{data.source}: samples are {'x'.join(map(str, shape))} but the blueprint's "
                   f"input is {'x'.join(map(str, input_shape))}; change `input:` (or "
                   f"--set input=[{', '.join(map(str, shape))}]) or use data of that shape")
    class_names = tuple(class_names)
    if data.named:
        order = match_names(data.class_names, class_names, classes, data.source)
        return _renumbered(data, order) if order is not None else data
    found = int(max(data.y_train.max(initial=0), data.y_test.max(initial=0))) + 1
    if found != classes:
        raise fail(f"{data.source}: its labels go up to {found - 1}, so it has {found} classes "
                   f"but the blueprint has classes: {classes}" + (
                       f"; no sample has label {found}" + (f"..{classes - 1}" if classes - found
                                                           > 1 else "")
                       if found < classes else "") + (
                       f"; list {found} class_names (the blueprint has {len(class_names)}) "
                       f"and set classes: {found}, or use matching data" if class_names else
                       f"; set --set classes={found} or use matching data"))
    if class_names:  # the data's classes are numbered: the blueprint names them
        _unique(class_names, "the blueprint's class_names", data.source, class_names, ())
        return dataclasses.replace(data, class_names=class_names)
    return data


def match_names(data_names: tuple[str, ...], class_names: tuple[str, ...], classes: int,
                source: str) -> list[int] | None:
    """Check the data's class names against the blueprint's (its ``class_names``, else just
    ``classes``); return each data class's output index when the blueprint orders them
    differently, None when the data's order is the outputs' order."""
    _unique(data_names, "the data", source, data_names, class_names)
    if not class_names:
        if len(data_names) != classes:
            raise fail(f"{source}: the data names {len(data_names)} classes "
                       f"({listed(data_names)}) but the blueprint has classes: {classes}; "
                       f"set --set classes={len(data_names)} or use matching data")
        return None
    _unique(class_names, "the blueprint's class_names", source, data_names, class_names)
    if set(data_names) != set(class_names):
        only_data = [n for n in data_names if n not in class_names]
        only_blueprint = [n for n in class_names if n not in data_names]
        raise fail(f"{source}: the data's classes and the blueprint's class_names differ "
                   f"({_both(data_names, class_names)}); only in the data: "
                   f"{listed(only_data) or 'none'}; only in the blueprint: "
                   f"{listed(only_blueprint) or 'none'}. They must be the same names, in any "
                   "order (the blueprint's order is the order of the model's outputs): rename "
                   "the data's classes or change class_names")
    order = [class_names.index(n) for n in data_names]
    return None if order == list(range(len(order))) else order


def _unique(names, whose: str, source: str, data_names, class_names) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise fail(f"{source}: {whose} names the class {n!r} twice "
                       f"({_both(data_names, class_names)}); each class needs one name")
        seen.add(n)


def _both(data_names, class_names) -> str:
    return f"data: {listed(data_names)}" + (
        f"; blueprint's class_names: {listed(class_names)}" if class_names else "")


def _renumbered(data, order: list[int]):
    """``data`` with every label ``k`` (the data's k-th class) made ``order[k]``: training
    then reaches each class by name, and the model's outputs follow the blueprint's order."""
    table = np.asarray(order, "int64")
    names = [""] * len(order)
    for k, i in enumerate(order):
        names[i] = data.class_names[k]
    if isinstance(data, ImageFiles):
        return dataclasses.replace(data, train_labels=table[data.train_labels],
                                   test_labels=table[data.test_labels], class_names=tuple(names))
    return dataclasses.replace(data, y_train=table[data.y_train], y_test=table[data.y_test],
                               class_names=tuple(names),
                               **({"label_map": tuple(order)} if hasattr(data, "label_map")
                                  else {}))
