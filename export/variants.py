"""Deployment variants of a float32 ONNX model: ORT-optimized, float16, int8 (static QDQ).

Dynamic quantization is not offered for conv nets: it made a small CNN 4-8x slower here
(ConvInteger), while static QDQ halved its batch-64 latency (issue 4).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from cnnbp.contract.bundle import VariantResult

from . import parity
from .onnx_export import INPUT
from .source import Source


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
    """Top-1 accuracy of the ONNX model at ``model_path`` on ``x`` (normalised rows) against
    labels ``y``."""
    sess = parity.session(str(model_path))
    predicted = np.concatenate([sess.run(None, {INPUT: x[i:i + 256]})[0].argmax(1)
                                for i in range(0, len(x), 256)])
    return float((predicted == y).mean())


def make_all(folder: Path, src: Source, max_batch: int) -> dict[str, VariantResult]:
    """Write ``variants/`` beside the bundle's ``model.onnx``: build each variant, validate it
    like the main model (int8 on its test accuracy), keep it only if it passes."""
    out = folder / "variants"
    out.mkdir()
    base = folder / "model.onnx"
    plan = {"optimized": ("model.optimized.onnx", parity.FLOAT32_ATOL, 1.0),
            "fp16": ("model.fp16.onnx", 1e-2, 0.99)}
    if src.x_calibration is not None:
        plan["int8"] = ("model.int8.onnx", 1.0, 0.0)  # judged by test accuracy, below
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for name, (file, atol, top1) in plan.items():
            target = out / file
            try:
                if name == "optimized":
                    optimized(base, target)
                elif name == "fp16":
                    float16(base, target)
                else:
                    int8(base, target, src.x_calibration, Path(work))
                found = parity.measure(src.model, str(target), src.x_test, (1, 7, max_batch),
                                       atol, top1)
                r = {"passed": found.passed, "atol": found.atol,
                     "min_top1_agreement": found.min_top1_agreement, "max_abs": found.max_abs,
                     "top1_agreement": found.top1_agreement, "file": f"variants/{file}"}
            except Exception as exc:  # a variant that cannot be built is reported, not fatal
                r = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
            if name == "int8" and "error" not in r and src.x_test is not None:
                base_acc = accuracy(base, src.x_test, src.y_test)
                acc = accuracy(target, src.x_test, src.y_test)
                r.update(test_accuracy=acc, fp32_test_accuracy=base_acc,
                         accuracy_change_points=round(100 * (acc - base_acc), 3))
                r["passed"] = r["accuracy_change_points"] > -1.0
            if not r["passed"]:
                target.unlink(missing_ok=True)
                r["kept"] = False
            results[name] = VariantResult(**r)
    return results
