"""A data set → its splits: the test set of data that has none of its own (``split_test``), and
the rows (or files) of a training set held out for validation, the same way for a given seed
on every backend."""
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


def split_test(x, y, seed=0, test_fraction=0.2):
    """A seeded split into (x_train, x_test, y_train, y_test), stratified by class whenever
    every class can give to both sides."""
    from sklearn.model_selection import train_test_split
    try:
        return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    except ValueError:  # a class with a single sample, or fewer test rows than classes
        return train_test_split(x, y, test_size=test_fraction, random_state=seed)
