"""Normalisation statistics and the run's bounded samples, without holding the data set.

* Arrays in memory: mean and std over every training value (as before).
* Memory-mapped arrays: the same figures from one chunked pass (float64 sums).
* Streamed images: over a seeded sample of at most ``training.stats_sample`` training images,
  decoded by the same pipeline that trains.
"""
from __future__ import annotations

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.preprocessing import fit as fit_all

from .data import Dataset, ImageFiles
from .images import BadImages, pixel_decoder, raise_for
from .pipeline import mapped, row_source, scaler
from .tfdata import DECODE_CALLS

CHUNK_BYTES = 64 << 20


def fit_preprocessing(data, net: ir.Network, bad: BadImages, **fields) -> tuple[Preprocessing, str]:
    """The run's ``Preprocessing`` and a line saying what its mean and std were fitted on."""
    channels = net.input_shape[-1]
    if isinstance(data, Dataset) and not mapped(data.x_train):
        return fit_all(data.x_train, **fields), \
            f"mean/std over all {len(data.x_train):,} training samples"
    per_value = np.float64(fields.get("raw_max") or 255.0) / 255.0 \
        if fields.get("domain") == "image" and not isinstance(data, Dataset) else 1.0
    scale = np.float64(fields.get("scale", 1.0))
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    levels = np.arange(256, dtype="float64")
    for chunk in _chunks(data, net, bad):
        x = chunk.reshape(-1, channels)
        if x.dtype == np.uint8:  # pixels: exact sums from a histogram, no float copy
            for ch in range(channels):
                seen = np.bincount(x[:, ch], minlength=256)
                total[ch] += seen @ levels
                squares[ch] += seen @ (levels * levels)
        else:
            x = x.astype("float64")
            total += x.sum(0)
            squares += (x * x).sum(0)
        count += len(x)
    if not count:
        raise bad.error() if bad.files else ValueError("no training samples")
    unit = per_value / scale  # raw units → fitted units, applied once to the sums
    mean = total / count * unit
    std = np.sqrt(np.maximum(squares / count * unit * unit - mean * mean, 0.0))
    prep = Preprocessing(mean=[float(m) for m in mean],
                         std=[float(s) if s > 1e-8 else 1.0 for s in std], **fields)
    n = len(data.y_train)
    if isinstance(data, Dataset):
        return prep, f"mean/std over all {n:,} training samples (one chunked pass)"
    k = min(n, net.training.stats_sample)
    return prep, (f"mean/std over a seeded sample of {k:,} of {n:,} training images "
                  f"(seed {net.training.seed})" if k < n else
                  f"mean/std over all {n:,} training images")


def _chunks(data, net: ir.Network, bad: BadImages):
    """The training values (raw units) a chunk at a time."""
    if isinstance(data, Dataset):
        x = data.x_train
        rows = max(1, CHUNK_BYTES // max(1, x[:1].nbytes))
        for i in range(0, len(x), rows):
            yield np.asarray(x[i:i + rows])
        return
    n = len(data.y_train)
    k = min(n, net.training.stats_sample)
    idx = np.sort(np.random.default_rng(net.training.seed).choice(n, k, replace=False))
    ds = row_source(data, net, bad).chunks(idx, "train")
    with raise_for(bad):
        for x, _ in ds.as_numpy_iterator():
            yield x


def sample_rows(data, prep: Preprocessing, net: ir.Network, bad: BadImages, rows: int):
    """``(x_test, y_test, x_calibration)`` normalised: the first ``rows`` held-out samples and
    the first ``rows`` training samples, decoded only as far as needed."""
    if isinstance(data, Dataset):
        return (prep.normalize(np.asarray(data.x_test[:rows], "float32")), data.y_test[:rows],
                prep.normalize(np.asarray(data.x_train[:rows], "float32")))
    if isinstance(data, ImageFiles):
        return _sample_files(data, prep, net, bad, rows)
    source = row_source(data, net, bad)
    to_model = scaler(prep, net)
    out = []
    for split, count in (("test", source.test_count), ("train", source.train_count)):
        ds = source.rows(np.arange(min(rows, count)), split).batch(max(1, rows)).map(to_model)
        with raise_for(bad):
            x, y = next(ds.as_numpy_iterator(), (None, None))
        if x is None:
            x = np.zeros((0, *net.input_shape), "float32")
            y = np.zeros((0, net.classes), "float32")
        out.append((x, y.argmax(-1).astype("int64")))
    return out[0][0], out[0][1], out[1][0]


def _sample_files(data: ImageFiles, prep: Preprocessing, net: ir.Network, bad: BadImages,
                  rows: int):
    """``sample_rows`` for an image folder: the first files decoded here, by the decoder the
    pipeline runs, without tracing two tf.data pipelines for them."""
    from concurrent.futures import ThreadPoolExecutor
    shape = tuple(net.input_shape)
    decode = pixel_decoder(shape, net.training.resize, bad)
    gain, shift = prep.gain_shift(prep.raw_max / 255.0)  # 8-bit pixels
    out = []
    # Pillow lets go of the GIL while it decodes and resizes: threads share the cores
    with ThreadPoolExecutor(DECODE_CALLS) as pool:
        for files, labels in ((data.test_files, data.test_labels),
                              (data.train_files, data.train_labels)):
            x, y = [], []
            with raise_for(bad):
                for (pixels, ok), label in zip(pool.map(decode, files[:rows], files[:rows]),
                                               labels[:rows]):
                    if ok:  # else skipped (--skip-bad-images), as the pipeline drops it
                        x.append(pixels)
                        y.append(label)
            pixels = np.stack(x) if x else np.zeros((0, *shape), "uint8")
            out.append((pixels.astype("float32") * gain + shift, np.asarray(y, "int64")))
    return out[0][0], out[0][1], out[1][0]
