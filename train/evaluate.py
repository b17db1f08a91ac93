"""Predictions on the test set → loss, accuracy, per-class precision/recall/F1 with macro and
weighted averages (scikit-learn's), and the confusion matrix."""
from __future__ import annotations

import numpy as np


def classification_report(probabilities: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """Figures computed from class probabilities and true class indices."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    k = len(class_names)
    predicted = probabilities.argmax(axis=1)
    classes = list(range(k))  # every class, even one the test set lacks
    confusion = confusion_matrix(labels, predicted, labels=classes)
    p, r, f, s = precision_recall_fscore_support(labels, predicted, labels=classes,
                                                 zero_division=0)
    per_class = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                        "support": int(s[i])} for i, name in enumerate(class_names)}
    averages = {}
    for kind in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(labels, predicted, labels=classes,
                                                        average=kind, zero_division=0)
        averages[f"{kind}_avg"] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], eps, 1))))
    return {"test_loss": loss, "test_accuracy": float((predicted == labels).mean()),
            "test_samples": int(len(labels)), "per_class": per_class, **averages,
            "confusion_matrix": confusion.tolist()}
