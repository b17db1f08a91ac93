"""``model.onnx`` + the run's ``Preprocessing`` → ``pixels.onnx``, a model that takes what a
client has before any preprocessing, and the parity gate it must pass to be shipped.

    pixels       the source's raw values in ``Preprocessing.raw_dtype``: uint8 [batch, H, W, C]
                 where they are whole numbers within 0..255 (8-bit pixels, digits' levels
                 0..16), float32 otherwise (float images in [0, 1], signals, tensors)
    ─ Cast ─ Mul(gain) ─ Add(shift) ─→  input  (model.onnx's graph, node for node)
    outputs      probabilities [batch, classes], label_index int64 [batch, 1] (the top-1 class)

The gain and shift are ``Preprocessing.gain_shift(1)``: ``(raw / scale - mean) / std`` folded
into one multiply and one add per raw unit, as the training pipeline folds it. The parity gate
judges the graph against a reference made without those constants (``reference_input``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from cnnbp.contract.bundle import PixelsParity
from cnnbp.contract.preprocessing import Preprocessing

from .onnx_export import INPUT, OUTPUT
from .parity import Agreement, case, compare, session

PIXELS = "pixels"
LABEL_INDEX = "label_index"
FILE = "pixels.onnx"


def takes_uint8(prep: Preprocessing) -> bool:
    """Whether ``pixels`` is uint8 (whole raw values within 0..255), else float32."""
    return prep.raw_dtype == "uint8"


def describe(prep: Preprocessing) -> dict[str, str]:
    """The ``input`` metadata entry: what ``pixels`` holds, in words a client can act on."""
    return {"name": PIXELS, "dtype": prep.raw_dtype, "units": prep.raw_units}


def build(model, prep: Preprocessing):
    """The ModelProto ``model``, changed in place (no second copy of the weights) and
    returned, so that its graph input is ``pixels``; the original nodes are kept as they are
    (they still read the tensor named ``input``)."""
    from onnx import TensorProto, helper, numpy_helper

    out = model
    graph = out.graph
    (old,) = [i for i in graph.input if i.name == INPUT]
    dims = [d for d in old.type.tensor_type.shape.dim]
    shape = ["batch" if i == 0 else d.dim_value for i, d in enumerate(dims)]
    dtype = TensorProto.UINT8 if takes_uint8(prep) else TensorProto.FLOAT
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info(PIXELS, dtype, shape))
    # Whole-sample constants, not one value a channel: ONNX Runtime broadcasts a [C] operand
    # over channels-last data span by span (3 values each), which made the add and multiply
    # 2.0 ms of a 64x32x32x3 batch against 0.05 ms for a [H, W, C] operand
    # (bench/pixels_latency.py, docs/benchmarks.md).
    gain, shift = (np.ascontiguousarray(np.broadcast_to(v, prep.input_shape))
                   for v in prep.gain_shift(1.0))  # per raw unit
    graph.initializer.extend([numpy_helper.from_array(gain, "preprocess/gain"),
                              numpy_helper.from_array(shift, "preprocess/shift")])
    front = [helper.make_node("Cast", [PIXELS], ["preprocess/float"], "preprocess/cast",
                              to=TensorProto.FLOAT),
             helper.make_node("Mul", ["preprocess/float", "preprocess/gain"],
                              ["preprocess/scaled"], "preprocess/mul"),
             helper.make_node("Add", ["preprocess/scaled", "preprocess/shift"], [INPUT],
                              "preprocess/add")]
    nodes = front + list(graph.node)
    nodes.append(helper.make_node("ArgMax", [OUTPUT], [LABEL_INDEX], "postprocess/argmax",
                                  axis=1, keepdims=1))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.output.append(helper.make_tensor_value_info(LABEL_INDEX, TensorProto.INT64,
                                                      ["batch", 1]))
    entry = out.metadata_props.add()
    entry.key, entry.value = "input", json.dumps(describe(prep))
    return out


def raw_rows(prep: Preprocessing, normalized: np.ndarray) -> np.ndarray:
    """Held-out rows stored normalised (``samples.npz``) → the raw values a client would send:
    the record's affine map inverted in float64, rounded where the raw dtype is uint8 (those
    rows came from whole raw values, so rounding recovers them exactly)."""
    mean, std = np.float64(prep.mean), np.float64(prep.std)
    raw = (normalized.astype("float64") * std + mean) * np.float64(prep.scale)
    if takes_uint8(prep):
        return np.clip(np.rint(raw), 0, 255).astype("uint8")
    return raw.astype("float32")


def reference_input(prep: Preprocessing, raw: np.ndarray,
                    stored: np.ndarray | None = None) -> np.ndarray:
    """What Keras is given to judge ``pixels.onnx(raw)``, computed apart from the graph's
    constants (``Preprocessing.gain_shift``): the stored rows themselves where ``raw`` was
    recovered from them exactly (uint8 raw values), else ``Preprocessing.apply``'s four steps
    ``(raw / scale - mean) / std``."""
    return stored if stored is not None and takes_uint8(prep) else prep.apply(raw)


def random_rows(prep: Preprocessing, batch: int, seed: int = 0) -> np.ndarray:
    """A seeded batch of raw rows in the source's units: random 8-bit levels for uint8 inputs, else
    values around the data's mean and spread."""
    rng = np.random.default_rng(seed + batch)
    shape = (batch, *prep.input_shape)
    if takes_uint8(prep):
        return rng.integers(0, int(prep.raw_max) + 1, shape, dtype="uint8")
    mean, std = np.float64(prep.mean), np.float64(prep.std)  # around the data's own range
    return ((rng.normal(size=shape) * std + mean) * prep.scale).astype("float32")


@dataclass(frozen=True)
class RawAgreement:
    """``pixels.onnx`` against ``model.onnx`` on one batch: the outputs' agreement, and
    whether ``label_index`` is the argmax of ``probabilities`` in every row."""

    agreement: Agreement
    label_index_matches: bool


def measure(keras_model, pixels_model, prep: Preprocessing, held_out: np.ndarray | None,
            batch_sizes=(1, 7, 64), atol: float = 1e-5) -> PixelsParity:
    """``pixels.onnx(raw)`` against Keras on ``reference_input`` of the same rows (held-out
    rows as ``samples.npz`` stores them, random raw rows through ``Preprocessing.apply``);
    ``passed`` needs max |diff| <= atol and 100% top-1 agreement (and ``label_index`` equal to
    the argmax of ``probabilities``)."""
    sess = session(pixels_model)
    stored = held_out if held_out is not None and len(held_out) else None
    raw_held_out = raw_rows(prep, stored) if stored is not None else None
    cases = []
    for kind in ["random"] + (["held-out"] if stored is not None else []):
        for batch in batch_sizes:
            if kind == "random":
                raw = random_rows(prep, batch)
                x = reference_input(prep, raw)
            else:
                rows = np.arange(batch) % len(stored)
                raw = raw_held_out[rows]
                x = reference_input(prep, raw, stored[rows])
            ref = np.asarray(keras_model(x, training=False))
            probs, index = sess.run([OUTPUT, LABEL_INDEX], {PIXELS: raw})
            agreement = compare(ref, probs)
            cases.append(case(kind, batch, agreement, agreement.max_abs <= atol and
                              agreement.top1_agreement == 1.0 and
                              bool((index[:, 0] == probs.argmax(1)).all())))
    return PixelsParity(passed=all(c.passed for c in cases), atol=atol, cases=cases,
                        max_abs=max(c.max_abs for c in cases),
                        top1_agreement=min(c.top1_agreement for c in cases), file=FILE,
                        input_dtype=prep.raw_dtype)


def against_model(pixels_path: str, model_path: str, prep: Preprocessing,
                  normalized: np.ndarray) -> RawAgreement:
    """``pixels.onnx`` on the raw form of ``normalized`` rows (a bundle's test vector) against
    ``model.onnx`` on ``reference_input`` of them: the graph's front is the record's
    preprocessing. Both run in ONNX Runtime, so they agree to float32 rounding."""
    raw = raw_rows(prep, normalized)
    ref = session(model_path).run(None, {INPUT: reference_input(prep, raw, normalized)})[0]
    probs, index = session(pixels_path).run([OUTPUT, LABEL_INDEX], {PIXELS: raw})
    return RawAgreement(compare(ref, probs), bool((index[:, 0] == probs.argmax(1)).all()))
