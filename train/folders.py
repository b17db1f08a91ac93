"""An image folder (one sub-folder per class, optionally under ``train/`` and ``test/``) → an
``ImageFiles`` list of files and labels; no pixel is decoded here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data import ImageFiles
from .labels import fail
from .split import split_test

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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


def folder(path: Path, input_shape) -> ImageFiles:
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
        tr, te, tr_labels, te_labels = split_test(idx, labels)
        tr_files, te_files = [files[i] for i in tr], [files[i] for i in te]
    note = f", {ignored} other file(s) ignored" if ignored else ""
    return ImageFiles(tuple(tr_files), tr_labels, tuple(te_files), te_labels, tuple(classes),
                      f"image folder {path} ({len(tr_files) + len(te_files)} images resized "
                      f"to {h}x{w}, {mode}{note})")
