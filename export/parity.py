"""ONNX Runtime vs Keras on the same inputs: the figures an export must meet to exist."""
from __future__ import annotations

import numpy as np

from .onnx_export import INPUT, layer_of

FLOAT32_ATOL = 1e-5


def session(model_bytes_or_path, providers=("CPUExecutionProvider",)):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes_or_path, options, providers=list(providers))


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """max |a - b|, that relative to the largest reference value, and top-1 agreement."""
    diff = np.abs(reference.astype("float64") - candidate.astype("float64"))
    return {"max_abs": float(diff.max()),
            "max_rel": float(diff.max() / max(np.abs(reference).max(), 1e-12)),
            "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean())}


def inputs_for(kind: str, batch: int, shape, held_out: np.ndarray | None, seed: int = 0):
    if kind == "random":
        return np.random.default_rng(seed + batch).normal(size=(batch, *shape)).astype("float32")
    idx = np.arange(batch) % len(held_out)
    return held_out[idx].astype("float32")


def check(keras_model, onnx_model, held_out: np.ndarray | None, batch_sizes=(1, 7, 64),
          atol: float = FLOAT32_ATOL, min_top1: float = 1.0) -> dict:
    """Run every case; ``passed`` needs max_abs <= atol and top-1 agreement >= min_top1."""
    sess = session(onnx_model.SerializeToString() if hasattr(onnx_model, "SerializeToString")
                   else onnx_model)
    shape = tuple(keras_model.input_shape[1:])
    kinds = ["random"] + (["held-out"] if held_out is not None and len(held_out) else [])
    cases, worst = [], None
    for kind in kinds:
        for batch in batch_sizes:
            x = inputs_for(kind, batch, shape, held_out)
            ref = np.asarray(keras_model(x, training=False))
            got = sess.run(None, {INPUT: x})[0]
            case = {"inputs": kind, "batch": batch, **compare(ref, got)}
            case["passed"] = case["max_abs"] <= atol and case["top1_agreement"] >= min_top1
            cases.append(case)
            if worst is None or case["max_abs"] > worst[0]:
                worst = (case["max_abs"], x)
    report = {"passed": all(c["passed"] for c in cases), "atol": atol,
              "min_top1_agreement": min_top1, "cases": cases,
              "max_abs": max(c["max_abs"] for c in cases),
              "top1_agreement": min(c["top1_agreement"] for c in cases)}
    if not report["passed"]:
        if hasattr(onnx_model, "graph"):
            report["first_diverging_layer"] = first_diverging_layer(keras_model, onnx_model,
                                                                    worst[1], atol)
        else:  # a file: the caller loads the graph only when it needs to look inside
            report["worst_input"] = worst[1]
    return report


def first_diverging_layer(keras_model, onnx_model, x: np.ndarray, atol: float) -> dict | None:
    """The first layer, in model order, whose ONNX output differs from Keras's by more than atol."""
    import keras
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx_model)
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    last_tensor: dict[str, str] = {}
    for node in inferred.graph.node:
        for out in node.output:
            if out in typed:
                last_tensor[layer_of(out)] = out
    layers = [l for l in keras_model.layers[1:] if l.name in last_tensor]
    if not layers:
        return None
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    del probe.graph.output[:]
    probe.graph.output.extend(typed[last_tensor[l.name]] for l in layers)
    onnx_outs = session(probe.SerializeToString()).run(None, {INPUT: x})
    keras_outs = keras.Model(keras_model.inputs, [l.output for l in layers])([x], training=False)
    for layer, ref, got in zip(layers, keras_outs, onnx_outs):
        ref = np.asarray(ref)
        if got.shape != ref.shape and got.ndim == 4 and got.transpose(0, 2, 3, 1).shape == ref.shape:
            got = got.transpose(0, 2, 3, 1)  # tf2onnx may keep a convolution's output NCHW
        if got.shape != ref.shape:
            continue
        diff = float(np.abs(ref - got).max())
        if diff > atol:
            return {"layer": layer.name, "onnx_tensor": last_tensor[layer.name], "max_abs": diff}
    return None
