"""ONNX Runtime vs Keras on the same inputs: the figures an export must meet to exist.

``measure`` runs every case and returns a ``ParityResult``; ``first_diverging_layer`` names
the first layer whose output differs, as a ``DivergingLayer``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnbp.contract.bundle import DivergingLayer, ParityCase

from .onnx_export import INPUT, layer_of

FLOAT32_ATOL = 1e-5


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate's outputs follow a reference's on the same inputs."""

    max_abs: float         # max |reference - candidate|
    max_rel: float         # max_abs relative to the largest reference value
    top1_agreement: float  # the share of rows whose argmax is the same

    def __str__(self) -> str:
        return f"max |diff| {self.max_abs:.2g}, top-1 agreement {self.top1_agreement:.4f}"


@dataclass(frozen=True)
class ParityResult:
    """Every case of one parity run and its verdict; ``worst_input`` is the batch with the
    largest difference, kept (when failed, and not already traced) for
    ``first_diverging_layer``."""

    passed: bool
    atol: float
    min_top1_agreement: float
    cases: tuple[ParityCase, ...]
    max_abs: float
    top1_agreement: float
    first_diverging_layer: DivergingLayer | None = None
    worst_input: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"max |diff| {self.max_abs:.2g}, top-1 agreement {self.top1_agreement:.4f}"


def session(model_bytes_or_path, providers=("CPUExecutionProvider",)):
    """An ONNX Runtime session for a model (bytes or path), its log kept to errors."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes_or_path, options, providers=list(providers))


def compare(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """max |a - b|, that relative to the largest reference value, and top-1 agreement."""
    diff = np.abs(reference.astype("float64") - candidate.astype("float64"))
    return Agreement(float(diff.max()), float(diff.max() / max(np.abs(reference).max(), 1e-12)),
                     float((reference.argmax(1) == candidate.argmax(1)).mean()))


def case(kind: str, batch: int, agreement: Agreement, passed: bool) -> ParityCase:
    """One row of a parity table, as ``validation.json`` stores it."""
    return ParityCase(inputs=kind, batch=batch, max_abs=agreement.max_abs,
                      max_rel=agreement.max_rel, top1_agreement=agreement.top1_agreement,
                      passed=bool(passed))


def inputs_for(kind: str, batch: int, shape, held_out: np.ndarray | None, seed: int = 0):
    """A batch for one case: seeded normal noise (``random``) or held-out rows, repeated."""
    if kind == "random":
        return np.random.default_rng(seed + batch).normal(size=(batch, *shape)).astype("float32")
    idx = np.arange(batch) % len(held_out)
    return held_out[idx].astype("float32")


def measure(keras_model, onnx_model, held_out: np.ndarray | None, batch_sizes=(1, 7, 64),
            atol: float = FLOAT32_ATOL, min_top1: float = 1.0) -> ParityResult:
    """Run ``onnx_model`` (a ModelProto, bytes or a path) and Keras on random and held-out
    batches of each size; ``passed`` needs max_abs <= atol and top-1 agreement >= min_top1
    in every case. A failed proto is traced to its first diverging layer here; for a file the
    caller loads the graph only if it wants that (``worst_input`` is kept for it)."""
    sess = session(onnx_model.SerializeToString() if hasattr(onnx_model, "SerializeToString")
                   else onnx_model)
    shape = tuple(keras_model.input_shape[1:])
    kinds = ["random"] + (["held-out"] if held_out is not None and len(held_out) else [])
    cases, worst = [], None
    for kind in kinds:
        for batch in batch_sizes:
            x = inputs_for(kind, batch, shape, held_out)
            ref = np.asarray(keras_model(x, training=False))
            agreement = compare(ref, sess.run(None, {INPUT: x})[0])
            cases.append(case(kind, batch, agreement, agreement.max_abs <= atol and
                              agreement.top1_agreement >= min_top1))
            if worst is None or agreement.max_abs > worst[0]:
                worst = (agreement.max_abs, x)
    passed = all(c.passed for c in cases)
    diverging, worst_input = None, None
    if not passed:
        if hasattr(onnx_model, "graph"):
            diverging = first_diverging_layer(keras_model, onnx_model, worst[1], atol)
        else:
            worst_input = worst[1]
    return ParityResult(passed, atol, min_top1, tuple(cases), max(c.max_abs for c in cases),
                        min(c.top1_agreement for c in cases), diverging, worst_input)


def first_diverging_layer(keras_model, onnx_model, x: np.ndarray,
                          atol: float) -> DivergingLayer | None:
    """The first layer, in model order, whose ONNX output differs from Keras's by more than
    atol on ``x`` (None when no layer's output can be matched, or none differs)."""
    import keras
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx_model)
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    last_tensor: dict[str, str] = {}
    for node in inferred.graph.node:
        for out in node.output:
            if out in typed:
                last_tensor[layer_of(out)] = out
    layers = [layer for layer in keras_model.layers[1:] if layer.name in last_tensor]
    if not layers:
        return None
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    del probe.graph.output[:]
    probe.graph.output.extend(typed[last_tensor[layer.name]] for layer in layers)
    onnx_outs = session(probe.SerializeToString()).run(None, {INPUT: x})
    keras_outs = keras.Model(keras_model.inputs,
                             [layer.output for layer in layers])([x], training=False)
    for layer, ref, got in zip(layers, keras_outs, onnx_outs):
        ref = np.asarray(ref)
        if got.shape != ref.shape and got.ndim == 4 and \
                got.transpose(0, 2, 3, 1).shape == ref.shape:
            got = got.transpose(0, 2, 3, 1)  # tf2onnx may keep a convolution's output NCHW
        if got.shape != ref.shape:
            continue
        diff = float(np.abs(ref - got).max())
        if diff > atol:
            return DivergingLayer(layer=layer.name, onnx_tensor=last_tensor[layer.name],
                                  max_abs=diff)
    return None
