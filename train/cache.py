"""Where decoded pixels are kept between epochs: the ``training.cache`` choice, and the
``PixelStore`` that keeps an image folder's pixels in memory or in a file."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np


def choose_cache(mode: str, decoded_bytes: int, budget_mb: int, where: str,
                 epochs: int = 2) -> str:
    """``memory``, ``disk`` or ``none`` for the ``training.cache`` setting ``mode``.

    ``auto`` keeps nothing for a single epoch (nothing would read it back). Else memory
    within the budget; else disk when the folder has twice the room and the kernel's page
    cache can hold the file (a quarter of the available memory): writing a larger one is
    throttled to the disk's speed, and reading it back from the disk is no faster than
    decoding again (measured in docs/benchmarks.md); else none. JPEGs at the input size, which
    TensorFlow decodes in the graph, are no exception any more: a cache cost them 1.1-1.2 s in
    the first epoch and saved 0.3-0.9 s in each later one (of 5.5 s; bench/cache_epochs.py).
    """
    if mode != "auto":
        return mode
    if epochs <= 1:
        return "none"
    if decoded_bytes <= budget_mb << 20:
        return "memory"
    from cnnbp.contract.machine import available_bytes
    free = shutil.disk_usage(where).free
    fits = free >= 2 * decoded_bytes and available_bytes() >= 4 * decoded_bytes
    return "disk" if fits else "none"



class PixelStore:
    """Decoded images kept between epochs by their place in a split: in memory, or in a file
    read back with ``pread`` (so the kernel's page cache holds it, not this process).

    Unlike ``Dataset.cache`` followed by a shuffle buffer, any order can be read back: every
    epoch, the first included, is shuffled in full, and no buffer has to fill before the first
    step or holds a second copy of the pixels.
    """

    UNKNOWN, KEPT, BAD = 0, 1, 2

    def __init__(self, count: int, shape: tuple, path: Path | None = None):
        self.row = int(np.prod(shape))
        self.state = np.zeros(count, "uint8")
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600) if path else None
        # np.empty commits no memory until a row is written
        self.pixels = np.empty((count, *shape), "uint8") if path is None else None

    def read(self, i: int, out: np.ndarray) -> None:
        """Copy row ``i``'s pixels (already kept) into ``out``."""
        if self.fd is None:
            out[...] = self.pixels[i]
        else:
            os.preadv(self.fd, [memoryview(out).cast("B")], i * self.row)

    def write(self, i: int, pixels: np.ndarray, ok: bool) -> None:
        """Keep row ``i``'s ``pixels``, or mark the row bad (``ok`` False) so it is not decoded
        again."""
        if ok:
            if self.fd is None:
                self.pixels[i] = pixels
            else:
                os.pwrite(self.fd, np.ascontiguousarray(pixels).tobytes(), i * self.row)
        self.state[i] = self.KEPT if ok else self.BAD  # after the pixels: readers check it

    def close(self) -> None:
        """Let go of the pixels: the file descriptor, or the array."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.pixels = None
