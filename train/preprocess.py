"""Per-channel input normalization: fitted on the training split, saved for inference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """``x_model = (x_raw / scale - mean) / std``, per channel (channels last)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalize arrays already divided by ``scale`` (as the data sources return them)."""
        return ((x - np.float32(self.mean)) / np.float32(self.std)).astype("float32")

    def to_json(self, input_shape, class_names) -> dict:
        return {"input_shape": list(input_shape), "layout": "channels_last", "dtype": "float32",
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "formula": "x = (raw / scale - mean) / std, per channel",
                "class_names": list(class_names)}

    @classmethod
    def from_json(cls, doc: dict) -> "Normalization":
        return cls(tuple(doc["mean"]), tuple(doc["std"]), doc.get("scale", 1.0))


def fit(x: np.ndarray, scale: float = 1.0) -> Normalization:
    """Mean and standard deviation of each channel over every sample and position."""
    axes = tuple(range(x.ndim - 1))
    std = x.std(axis=axes)
    return Normalization(tuple(float(m) for m in x.mean(axis=axes)),
                         tuple(float(s) if s > 1e-8 else 1.0 for s in std), scale)
