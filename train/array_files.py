"""A ``.npz`` file or a folder of ``.npy`` files → a checked ``Dataset``: memory-mapped where
the file allows, every label and value checked and a bad one named by its file, key and row.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .data import Dataset
from .labels import check_labels, fail
from .labels import class_names as class_names_of
from .split import split_test


def npz(path: Path, classes: int | None) -> Dataset:
    """A .npz with x_train, y_train, x_test, y_test (uncompressed inputs memory-mapped), or
    with x and y split 80/20 here; ``classes`` (the net's) bounds unnamed labels."""
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
                    bounds(x, where("x"))
                x_tr, x_te, y_tr, y_te = split_test(x, _labels(y, where("y"),
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


def npy_folder(path: Path, classes: int | None) -> Dataset:
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
    ranges = [bounds(x, where(k)) for k, x in (("x_train", x_tr), ("x_test", x_te))
              if x.dtype.kind == "f"]
    raw_max = 255.0 if x_tr.dtype == x_te.dtype == np.uint8 else \
        1.0 if floats and all(lo >= 0 and hi <= 1 for lo, hi in ranges) else None
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


def bounds(a: np.ndarray, where: str, chunk: int = 1 << 22) -> tuple[float, float]:
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
