"""A user's weights file → its weight-bearing layers, in order, in Keras's layout: ``.keras``,
``.weights.h5``/``.h5`` (Keras 3 and legacy Keras 2 layouts, the files ``keras.applications``
writes and downloads) and ``.onnx`` (initializers, as ``torch.onnx.export`` and tf2onnx write
them; a bias given as a following ``Add`` is found by the importer's own rule). Read with h5py
and onnx, no Keras.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.contract.errors import ArtifactError

from .import_onnx import following_bias, load_model, users_of


@dataclass(frozen=True)
class SourceLayer:
    """One weight-bearing layer of the source, its arrays already in Keras's layout."""

    name: str
    kind: str                      # CONV, FC or BATCHNORM
    arrays: tuple[np.ndarray, ...]


def read(path: str | Path) -> list[SourceLayer]:
    """The weight-bearing layers of a weights file, in order, in Keras's layout."""
    return read_layers(Path(path))[0]


def read_layers(path: Path) -> tuple[list[SourceLayer], bool]:
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
    graph = load_model(path).graph
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
