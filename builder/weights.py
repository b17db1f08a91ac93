"""Weights from a user's file (``weights: {from: PATH}`` or ``--weights PATH``) into a built
model: ``.keras``, ``.weights.h5``/``.h5`` (Keras 3 and legacy Keras 2 layouts, the files
``keras.applications`` writes and downloads) and ``.onnx`` (initializers, as
``torch.onnx.export`` and tf2onnx write them).

Layers are matched in the order of their weight-bearing layers, one kind at a time (CONV, FC,
BATCHNORM): a Keras 3 ``.weights.h5`` keeps each kind's order but not how the kinds interleave.
Layouts are converted to Keras's (OIHW → HWIO, Gemm ``[out, in]`` → ``[in, out]``) before the
shapes are compared. No Keras import here: the shapes come from the IR and its analysis (so a
file that does not fit is refused before TensorFlow starts), the model is filled through its
layers' ``set_weights``, the files are read with h5py and onnx.
"""
from __future__ import annotations

import io
import re
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.contract.errors import ArtifactError

from . import ir
from .errors import BlueprintError, Problem
from .import_onnx import following_bias, users_of

# with_source is kept importable here for bench/weights_load.py
from .weights_source import channel_problems, source_of, with_source  # noqa: F401


@dataclass(frozen=True)
class SourceLayer:
    """One weight-bearing layer of the source, its arrays already in Keras's layout."""

    name: str
    kind: str                      # CONV, FC or BATCHNORM
    arrays: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Loaded:
    """What ``load_into`` did: the layers filled, the ones re-initialised on purpose."""

    path: str
    layers: int
    reinitialised: tuple[str, ...]
    seconds: float


def read(path: str | Path) -> list[SourceLayer]:
    """The weight-bearing layers of a weights file, in order, in Keras's layout."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[list[SourceLayer], bool]:
    """The layers, and whether the source flattens channels first (an ONNX from PyTorch)."""
    try:
        if path.name.endswith(".onnx"):
            return _read_onnx(path)
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                return _read_h5(io.BytesIO(z.read("model.weights.h5"))), False
        return _read_h5(path), False
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise ArtifactError(path, f"cannot read weights from it: {exc}") from None


def _kind(arrays: list[np.ndarray]) -> str | None:
    """CONV (a 3-D or 4-D kernel), FC (a 2-D one) or BATCHNORM (four equal vectors)."""
    if not arrays:
        return None
    if arrays[0].ndim in (3, 4):
        return "CONV"
    if arrays[0].ndim == 2:
        return "FC"
    if len(arrays) == 4 and all(a.ndim == 1 and a.shape == arrays[0].shape for a in arrays):
        return "BATCHNORM"
    return None


def _numbered(name: str) -> tuple[str, int]:
    """Keras 3's group key ``conv2d_12`` → (``conv2d``, 12); ``conv2d`` → (``conv2d``, 0)."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return m.group(1), int(m.group(2) or 0)


def _read_h5(file) -> list[SourceLayer]:
    import h5py
    with h5py.File(file, "r") as f:
        if "layers" in f:  # Keras 3: layers/<class key>/vars/0..; order kept per class key
            return _keras3_layers(f["layers"])
        root = f["model_weights"] if "model_weights" in f else f  # Keras 2 / legacy .h5
        if "layer_names" not in root.attrs:
            raise ValueError("neither Keras 3's layers/ group nor a legacy layer_names list")
        found = []
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            group = root[name]
            arrays = [np.asarray(group[n.decode() if isinstance(n, bytes) else str(n)])
                      for n in group.attrs.get("weight_names", [])]
            kind = _kind(arrays)
            if kind:
                found.append(SourceLayer(name, kind, tuple(arrays)))
        return found


def _keras3_layers(layers) -> list[SourceLayer]:
    found = []
    for key in sorted(layers, key=_numbered):
        group = layers[key]
        if "layers" in group:  # a nested model
            found += _keras3_layers(group["layers"])
        vars_ = group.get("vars")
        if vars_ is None:
            continue
        arrays = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
        kind = _kind(arrays)
        if kind:
            found.append(SourceLayer(str(vars_.attrs.get("name", key)), kind, tuple(arrays)))
    return found


def _read_onnx(path: Path) -> tuple[list[SourceLayer], bool]:
    import onnx
    from onnx import numpy_helper
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError…: all mean unreadable
        raise ArtifactError(path, f"is not a readable ONNX model: {exc}") from None
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # constants and their identities count as initializers
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    users = users_of(graph)
    after = lambda t: [n for n in users.get(t, []) if n.op_type != "Shape"]  # noqa: E731

    def bias(node, channels: int) -> list[np.ndarray]:
        """Its own third input, else the Add that follows it (the importer's same rule)."""
        if len(node.input) > 2 and node.input[2]:
            return [values[node.input[2]].reshape(-1)]
        found = following_bias(after, node.output[0], values, channels)
        return [values[found[0]].reshape(-1)] if found else []

    found = []
    for i, node in enumerate(graph.node):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        name = node.name or f"{node.op_type}#{i}"
        if node.op_type == "Conv" and node.input[1] in values:
            w = values[node.input[1]]  # O, I/groups, *spatial → *spatial, I/groups, O
            found.append(SourceLayer(name, "CONV", (np.transpose(w, (*range(2, w.ndim), 1, 0)),
                                                    *bias(node, w.shape[0]))))
        elif node.op_type == "Gemm" and node.input[1] in values:
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or \
                    attrs.get("beta", 1.0) != 1.0:
                raise ValueError(f"{name}: a Gemm with transA, alpha or beta is not a dense layer")
            w = values[node.input[1]]
            w = w.T if attrs.get("transB", 0) else w
            found.append(SourceLayer(name, "FC", (w, *bias(node, w.shape[1]))))
        elif node.op_type == "MatMul" and node.input[1] in values:
            w = values[node.input[1]]
            found.append(SourceLayer(name, "FC", (w, *bias(node, w.shape[1]))))
        elif node.op_type == "BatchNormalization":
            found.append(SourceLayer(name, "BATCHNORM",
                                     tuple(values[x] for x in node.input[1:5])))
    return found, flattens_channels_first(graph)


def flattens_channels_first(graph) -> bool:
    """Whether an ONNX graph flattens its feature maps channels first (C, H, W), as PyTorch
    does: true unless a Transpose back to channels last (perm 0,2,3,1 or 0,2,1), as tf2onnx
    writes for Keras nets, comes before the first Gemm or MatMul."""
    for node in graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            return True
        if node.op_type == "Transpose":
            perm = [a.ints for a in node.attribute if a.name == "perm"]
            if perm and list(perm[0]) in ([0, 2, 3, 1], [0, 2, 1]):
                return False
    return True


@dataclass(frozen=True)
class _Target:
    name: str
    kind: str
    shapes: tuple[tuple[int, ...], ...]    # its weights' shapes, in Keras's layout
    flatten_shape: tuple[int, ...] | None  # the feature map a first FC after Flatten reads


def _targets(compiled) -> list[_Target]:
    """The net's weight-bearing layers and their weights' shapes, from the IR and the
    analysis (no Keras): the Keras model's layers have the same names."""
    net = compiled.network
    found, flat, shape = [], None, tuple(net.input_shape)
    for layer, stats in zip(net.layers, compiled.analysis.layers, strict=True):
        if isinstance(layer, ir.Flatten):
            flat = shape
        elif isinstance(layer, ir.Conv):
            kernel = (*layer.kernel, shape[-1] // layer.groups, layer.filters)
            bias = ((layer.filters,),) if layer.bias else ()
            found.append(_Target(layer.name, "CONV", (kernel, *bias), None))
        elif isinstance(layer, ir.Dense):
            bias = ((layer.units,),) if layer.bias else ()
            found.append(_Target(layer.name, "FC", ((shape[-1], layer.units), *bias), flat))
            flat = None
        elif isinstance(layer, ir.BatchNorm):
            found.append(_Target(layer.name, "BATCHNORM", ((shape[-1],),) * 4, None))
        shape = tuple(stats.output_shape)
    return found


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _chw_rows(kernel: np.ndarray, feature: tuple[int, ...]) -> np.ndarray:
    """A first FC's kernel whose rows follow a (C, *spatial) flatten, reordered to our
    (*spatial, C) flatten."""
    c, spatial = feature[-1], feature[:-1]
    k = kernel.reshape(c, *spatial, kernel.shape[-1])
    return np.moveaxis(k, 0, -2).reshape(kernel.shape)


@dataclass(frozen=True)
class Plan:
    """The file's arrays for each of our layers, every shape checked (``match``)."""

    path: str
    layers: tuple[tuple[str, tuple[np.ndarray, ...]], ...]  # our layer name → its arrays
    reinitialised: tuple[str, ...]
    notes: tuple[str, ...]       # what differs on purpose, for stderr

    def line(self) -> str:
        """One line for the user: the file, the layers it fills, the ones left fresh."""
        fresh = f", {len(self.reinitialised)} re-initialised ({', '.join(self.reinitialised)})" \
            if self.reinitialised else ""
        return f"weights from {self.path}: {len(self.layers)} layers loaded{fresh}"


def match(compiled) -> Plan | None:
    """Read the blueprint's ``weights.from`` and pair its layers with the net's (None when
    the blueprint has none), without Keras: ``cnnbp build`` and ``train`` call it before
    TensorFlow starts or a run folder is made.

    Raises ArtifactError naming our layer, the source layer and both shapes at the first
    mismatch. A last FC whose class count differs, and every FC when the file has none (a
    feature extractor), keep their fresh initialisation, said in ``notes``.
    """
    source = source_of(compiled.resolved)
    if source is None:
        return None
    path, order = source.path, source.channel_order
    src, chw = _read(Path(path))
    ours = _targets(compiled)
    plan, reinit, notes = [], [], []
    last_fc = ([t.name for t in ours if t.kind == "FC"] or [None])[-1]
    for kind in ("CONV", "BATCHNORM", "FC"):
        mine = [t for t in ours if t.kind == kind]
        theirs = [s for s in src if s.kind == kind]
        if kind == "FC" and mine and not theirs and plan:  # a feature extractor's file
            reinit += [t.name for t in mine]
            notes.append(f"note: {path} has no FC layers (a feature extractor, as "
                         f"include_top=False writes): the {len(mine)} FC layers "
                         f"({', '.join(reinit)}) keep their fresh initialisation, to be trained")
            continue
        if len(mine) != len(theirs):
            _count_error(path, kind, mine, theirs)
        for n, (t, s) in enumerate(zip(mine, theirs)):
            arrays = list(s.arrays)
            if kind == "FC" and chw and t.flatten_shape and len(t.flatten_shape) > 1 and \
                    arrays[0].shape == t.shapes[0]:
                arrays[0] = _chw_rows(arrays[0], t.flatten_shape)
            if kind == "CONV" and order == "bgr" and n == 0:
                arrays[0] = arrays[0][..., ::-1, :]  # the source took BGR; ours takes RGB
            want, got = list(t.shapes), [tuple(a.shape) for a in arrays]
            if want == got:
                plan.append((t.name, tuple(arrays)))
            elif t.name == last_fc and len(want) == len(got) and want[0][:-1] == got[0][:-1]:
                reinit.append(t.name)
                notes.append(f"note: {t.name} has {want[0][-1]} classes and {s.name} in "
                             f"{path} {got[0][-1]}: the classifier keeps its fresh "
                             "initialisation, to be trained; every other layer takes the "
                             "file's weights")
            else:
                raise ArtifactError(path, f"its weights do not fit this net: our {kind} "
                                    f"layer {t.name} has weights {', '.join(map(_shape, want))}"
                                    f" but the source's layer {s.name} (its {kind} layer "
                                    f"{n + 1}) has {', '.join(map(_shape, got))} (in Keras's "
                                    f"layout); {t.name} is the first layer that failed. "
                                    "Layers are matched in order, one kind at a time: check "
                                    "that the blueprint and the file describe the same net")
    return Plan(path, tuple(plan), tuple(reinit), tuple(notes))


def load_into(model, compiled, say=None, plan: Plan | None = None) -> Loaded | None:
    """Fill ``model`` (built from ``compiled``) from its blueprint's ``weights.from``; nothing
    when it has none. ``plan`` is ``match(compiled)`` when the caller has it already; its
    notes go to ``say`` (stderr by default). Nothing changes unless every layer fits."""
    start = time.perf_counter()
    plan = plan or match(compiled)
    if plan is None:
        return None
    for note in plan.notes:
        (say or (lambda line: print(line, file=sys.stderr)))(note)
    for name, arrays in plan.layers:
        model.get_layer(name).set_weights(list(arrays))
    return Loaded(plan.path, len(plan.layers), plan.reinitialised, time.perf_counter() - start)


def fixed_normalization(prep, note: str, resolved: dict):
    """``(prep, note)`` with the mean and std of the blueprint's ``weights.normalize`` (pixels
    0..255, the source's own preprocessing) in place of the fitted ones; unchanged without it.

    The record holds them in its fitted units (raw / scale), where a pixel is
    raw * 255 / raw_max, hence the factor raw_max / (255 * scale)."""
    fixed = (resolved.get("weights") or {}).get("normalize")
    if fixed is None:
        return prep, note
    problems = channel_problems(resolved["weights"], prep.input_shape[-1])  # a backstop
    if prep.domain != "image":
        problems.append(Problem("weights.normalize", f"is in pixels (0..255) but this data is "
                                f"no image ({prep.domain}): drop it and let training fit the "
                                "mean and std"))
    if problems:
        raise BlueprintError(problems)
    factor = prep.raw_max / (255.0 * prep.scale)
    prep = prep.model_copy(update={"mean": [float(m) * factor for m in fixed["mean"]],
                                   "std": [float(s) * factor for s in fixed["std"]]})
    return prep, (f"mean {fixed['mean']} and std {fixed['std']} (pixels 0..255) from "
                  "weights.normalize, not fitted")


def _count_error(path: str, kind: str, mine, theirs) -> None:
    n = min(len(mine), len(theirs))
    first = f"our {mine[n].name}" if n < len(mine) else f"the source's {theirs[n].name}"
    raise ArtifactError(path, f"its weights do not fit this net: this net has {len(mine)} "
                        f"{kind} layers with weights and the file {len(theirs)}; {first} is "
                        f"the first {kind} layer without a partner (layers are matched in "
                        "order, one kind at a time)")
