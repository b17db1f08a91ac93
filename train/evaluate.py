"""Predictions on the test set → loss, accuracy, per-class precision/recall, confusion matrix."""
from __future__ import annotations

import numpy as np


def classification_report(probabilities: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """Figures computed from class probabilities and true class indices."""
    k = len(class_names)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        predicted_i, actual_i = confusion[:, i].sum(), confusion[i, :].sum()
        per_class[name] = {"precision": float(tp / predicted_i) if predicted_i else 0.0,
                           "recall": float(tp / actual_i) if actual_i else 0.0,
                           "support": int(actual_i)}
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], eps, 1))))
    return {"test_loss": loss, "test_accuracy": float((predicted == labels).mean()),
            "test_samples": int(len(labels)), "per_class": per_class,
            "confusion_matrix": confusion.tolist()}
