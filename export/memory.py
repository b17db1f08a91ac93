"""Refuse an export the machine cannot hold, before it starts, instead of an out-of-memory kill."""
from __future__ import annotations

import math

from cnnbp.contract.machine import available_bytes

# Measured: VGG-16 (553 MB of weights) exported at 2.75 GiB peak with batch-2 parity checks
# (docs/benchmarks.md): about 3 copies of the weights plus ~1 GiB of TensorFlow and ONNX
# Runtime. Allow 4 copies and 1.5 GiB, plus each parity batch's activations in Keras and in
# ONNX Runtime at once.
WEIGHT_COPIES = 4
BASE_BYTES = 3 << 29  # 1.5 GiB


def needed_bytes(model, max_batch: int) -> tuple[int, int, int]:
    """(total, weights, activations at max_batch) for exporting and validating ``model``."""
    weights = sum(int(math.prod(w.shape)) * 4 for w in model.weights)
    per_sample = sum(int(math.prod(layer.output.shape[1:])) * 4 for layer in model.layers[1:])
    activations = 2 * per_sample * max_batch  # Keras and ONNX Runtime hold a batch each
    return WEIGHT_COPIES * weights + activations + BASE_BYTES, weights, activations


def ensure_fits(model, max_batch: int, available: int | None = None) -> None:
    """Raise RefusedError naming the figures when exporting ``model`` would not fit in
    ``available`` bytes (default: what this machine or its cgroup has free); changes nothing."""
    from cnnbp.contract.errors import RefusedError
    available = available_bytes() if available is None else available
    total, weights, activations = needed_bytes(model, max_batch)
    if total > available:
        gib = lambda n: f"{n / (1 << 30):.1f} GiB"
        raise RefusedError((
            f"exporting this model needs about {gib(total)} ({WEIGHT_COPIES} x {gib(weights)} of "
            f"weights + {gib(activations)} of activations for parity checks at batch {max_batch} "
            f"+ {gib(BASE_BYTES)}), but only {gib(available)} is available; lower --max-batch "
            "or export on a larger machine. Nothing was written."))
