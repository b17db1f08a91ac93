"""A training set → the rows (or files) kept for training and those held out for validation,
the same way for a given seed on every backend."""
from __future__ import annotations

import numpy as np


def split_validation(x, y, fraction: float, seed: int):
    """Hold out ``fraction`` of the training set, the same way for a given seed."""
    if fraction <= 0:
        return x, y, None, None
    tr, val = split_rows(len(x), fraction, seed)
    return x[tr], y[tr], x[val], y[val]


def split_files(files, labels, fraction: float, seed: int):
    """A stratified, seeded validation split of a file list (indices into it)."""
    idx = np.arange(len(files))
    if fraction <= 0 or len(files) < 2:
        return idx, idx[:0]
    from sklearn.model_selection import train_test_split
    try:
        tr, val = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify
        tr, val = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(tr), np.sort(val)



def split_rows(count: int, fraction: float, seed: int):
    """The rows ``split_validation`` keeps and holds out, so both backends split alike."""
    if fraction <= 0:
        return np.arange(count), np.arange(0)
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * fraction))
    return order[cut:], order[:cut]
