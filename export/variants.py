"""Deployment variants of a float32 ONNX model: ORT-optimized, float16, int8 (static QDQ).

Dynamic quantization is not offered for conv nets: it made a small CNN 4-8x slower here
(ConvInteger), while static QDQ halved its batch-64 latency (issue 4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .onnx_export import INPUT


def optimized(src: Path, dst: Path) -> None:
    """ONNX Runtime's offline graph optimizations (extended level: portable across CPUs)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def float16(src: Path, dst: Path) -> None:
    """Weights and compute in float16; input and output stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def int8(src: Path, dst: Path, calibration: np.ndarray, work: Path) -> None:
    """Static QDQ quantization, calibrated on ``calibration`` (normalized training samples)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 32)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch.astype("float32")}

    prepared = work / "prepared.onnx"
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    prepared.unlink(missing_ok=True)


def accuracy(model_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX model at ``path`` on ``x`` (normalised rows) against labels
    ``y``."""
    from .parity import session
    sess = session(str(model_path))
    predicted = np.concatenate([sess.run(None, {INPUT: x[i:i + 256]})[0].argmax(1)
                                for i in range(0, len(x), 256)])
    return float((predicted == y).mean())
