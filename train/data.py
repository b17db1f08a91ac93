"""The kinds of loaded data every other part of training takes: arrays (``Dataset``) and an
image folder's file list (``ImageFiles``); TFRecord shards are ``tfrecords.TFRecords``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
