"""A ``.keras`` file → ``Imported``: its ``config.json`` read straight from the zip (no Keras,
no TensorFlow), layer by layer, as a single chain of IR layers.

A Keras layer with an ``activation`` becomes the layer and its activation token; a padding
layer (``ZeroPadding2D``, cnnbp's ``EdgePad``) merges into the window after it; the classifier
is the last ``Dense`` with a softmax (its own, or a ``Softmax``/``Activation`` after it).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, NoReturn

from . import ir
from .imported import Imported, Window, breaks, window

_ACTIVATIONS = {"relu": "RELU", "tanh": "TANH", "sigmoid": "SIGMOID", "silu": "SWISH",
                "swish": "SWISH", "gelu": "GELU", "elu": "ELU", "leaky_relu": "LEAKY_RELU"}
_CONV = ("Conv1D", "Conv2D")
_POOL = {"MaxPooling1D": "max", "MaxPooling2D": "max", "AveragePooling1D": "avg",
         "AveragePooling2D": "avg"}
_GLOBAL = {"GlobalMaxPooling1D": "max", "GlobalMaxPooling2D": "max",
           "GlobalAveragePooling1D": "avg", "GlobalAveragePooling2D": "avg"}
_PREPROCESSING = ("Rescaling", "Normalization", "Resizing", "CenterCrop", "RandomFlip",
                  "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast")
KNOWN = ("Conv1D/Conv2D (CONV), MaxPooling/AveragePooling (POOL), GlobalMax/AveragePooling "
         "(GLOBAL_POOL), Activation/ReLU/LeakyReLU/ELU, BatchNormalization (BN), Dropout, "
         "Flatten, Dense (FC), ZeroPadding, and cnnbp's LocalResponseNorm (LRN)")


def read(path: str | Path) -> Imported:
    """Read ``path`` (a ``.keras`` file); a model outside the grammar raises BlueprintError
    naming the first layer that breaks it, an unreadable file ArtifactError."""
    config = _config(Path(path))
    return _Reader(str(path), config).run()


def _config(path: Path) -> dict:
    from cnnbp.contract.errors import ArtifactError
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactError(path, f"is not a readable .keras file (a zip holding config.json, "
                            f"as model.save writes it): {exc}") from None


def _tensors(value: Any) -> list[str]:
    """Names of the layers whose outputs a layer's inbound arguments take."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [n for v in value.values() for n in _tensors(v)]
    if isinstance(value, list):
        return [n for v in value for n in _tensors(v)]
    return []


class _Reader:
    def __init__(self, source: str, config: dict):
        self.source = source
        self.config = config
        self.layers: list[ir.Layer] = []
        self.pads: tuple | None = None    # a padding layer waiting for its window
        self.pad_fill = "zero"
        self.spatial: tuple[int, ...] | None = None

    def refuse(self, entry: dict, message: str) -> NoReturn:
        raise breaks(self.source, entry.get("config", {}).get("name", "?"),
                     entry.get("class_name", "?"), message)

    def run(self) -> Imported:
        top = self.config.get("config", {})
        kind = self.config.get("class_name")
        if kind not in ("Functional", "Sequential", "Model"):
            self.refuse(self.config, "the file holds no Functional or Sequential model")
        entries = list(top.get("layers", []))
        shape = self._input(entries, kind)
        self.spatial = shape[:-1]
        previous = None
        for entry in entries:
            if entry["class_name"] == "InputLayer":
                previous = entry["config"]["name"]
                continue
            if kind != "Sequential":
                sources = [n for node in entry.get("inbound_nodes", [])
                           for n in _tensors(node)]
                if len(sources) > 1:
                    self.refuse(entry, f"joins {len(sources)} branches ({', '.join(sources)}); "
                                "the pattern describes a single chain of layers, each taking "
                                "the previous one's output")
                if previous is not None and sources != [previous]:
                    self.refuse(entry, f"takes {', '.join(sources) or 'nothing'} rather than "
                                f"the layer before it ({previous}); the pattern describes a "
                                "single chain of layers")
            previous = entry["config"]["name"]
            self._layer(entry)
        if self.pads is not None:
            self.refuse(entries[-1], "padding at the end of the net pads nothing a window uses")
        self._classifier(entries)
        return Imported(top.get("name", Path(self.source).stem), shape, tuple(self.layers),
                        self.source, "Keras")

    def _input(self, entries: list[dict], kind: str) -> tuple[int, ...]:
        for entry in entries[:1]:
            c = entry.get("config", {})
            shape = c.get("batch_shape") or c.get("batch_input_shape") or \
                (entry.get("build_config") or {}).get("input_shape")
            if shape and all(isinstance(d, int) for d in shape[1:]) and 3 <= len(shape) <= 4:
                return tuple(shape[1:])
        first = entries[0] if entries else self.config
        self.refuse(first, f"the {kind} model's input shape is unknown or not "
                    "LENGTHxCHANNELS / HEIGHTxWIDTHxCHANNELS with fixed sizes; a blueprint "
                    "needs a fixed input such as [224, 224, 3]")

    # -- one Keras layer -------------------------------------------------------------------
    def _layer(self, entry: dict) -> None:
        cls, c = entry["class_name"], entry["config"]
        name = c["name"]
        if self.pads is not None and cls not in _CONV + tuple(_POOL):
            self.refuse(entry, "follows a padding layer; a blueprint pads only the window "
                        "(CONV or POOL) right after it")
        if cls in _CONV:
            self._conv(entry, c)
            self._activation(entry, c.get("activation"), f"{name}_act")
        elif cls in _POOL:
            self._pool(entry, c, _POOL[cls])
        elif cls in _GLOBAL:
            self._channels_last(entry, c)
            self.layers.append(ir.GlobalPool(name, _GLOBAL[cls], self._origin(entry)))
            self.spatial = None
        elif cls in ("ZeroPadding1D", "ZeroPadding2D") or \
                (cls == "EdgePad" and c.get("fill", "zero") in ("zero", "min")):
            self._padding(entry, c)
        elif cls == "Activation":
            self._activation(entry, c.get("activation"), name)
        elif cls == "ReLU":
            if c.get("max_value") is not None or c.get("threshold", 0) or \
                    c.get("negative_slope", 0):
                self.refuse(entry, "is a ReLU with a cap, threshold or slope; the pattern's "
                            "RELU is max(x, 0) (LEAKY_RELU(alpha) for a slope)")
            self.layers.append(ir.Activation(name, "RELU", None, self._origin(entry)))
        elif cls == "LeakyReLU":
            alpha = c.get("negative_slope", c.get("alpha", 0.3))
            self.layers.append(ir.Activation(name, "LEAKY_RELU", float(alpha), self._origin(entry)))
        elif cls == "ELU":
            self.layers.append(ir.Activation(name, "ELU", float(c.get("alpha", 1.0)),
                                             self._origin(entry)))
        elif cls == "ExactGelu":
            self.layers.append(ir.Activation(name, "GELU", None, self._origin(entry)))
        elif cls == "Softmax":
            self._softmax(entry)
        elif cls == "BatchNormalization":
            self._batch_norm(entry, c)
        elif cls == "LocalResponseNorm":
            self.layers.append(ir.LRN(name, int(c["size"]), float(c["alpha"]), float(c["beta"]),
                                      float(c["bias"]), self._origin(entry)))
        elif cls == "Dropout":
            self.layers.append(ir.Dropout(name, float(c["rate"]), self._origin(entry)))
        elif cls == "Flatten":
            self.layers.append(ir.Flatten(name, self._origin(entry)))
            self.spatial = None
        elif cls == "Dense":
            self.layers.append(ir.Dense(name, int(c["units"]), bool(c.get("use_bias", True)),
                                        False, self._origin(entry)))
            self._activation(entry, c.get("activation"), f"{name}_act")
        elif cls in _PREPROCESSING:
            self.refuse(entry, "is preprocessing; a blueprint's net starts after it, and the "
                        "input's scaling is stated beside the weights (weights.normalize: mean "
                        "and std, see the README) — import the model without this layer")
        else:
            self.refuse(entry, f"has no token in the pattern grammar; it knows {KNOWN}")

    def _origin(self, entry: dict) -> str:
        return f"Keras layer {entry['config']['name']} ({entry['class_name']})"

    def _channels_last(self, entry: dict, c: dict) -> None:
        if c.get("data_format", "channels_last") != "channels_last":
            self.refuse(entry, f"is {c['data_format']}; blueprints are channels last")

    def _padding(self, entry: dict, c: dict) -> None:
        raw = c.get("pads", c.get("padding"))
        rank = len(self.spatial or ())
        if isinstance(raw, int):
            raw = [[raw, raw]] * rank
        pads = tuple(tuple(int(v) for v in ([p, p] if isinstance(p, int) else p)) for p in raw)
        self._channels_last(entry, c)
        self.pads, self.pad_fill = pads, c.get("fill", "zero")

    def _window_of(self, entry, c, kernel, stride, dilation, max_pool=False) -> Window:
        self._channels_last(entry, c)
        if self.spatial is None:
            self.refuse(entry, "works over positions, but the net is already flat here; "
                        "the pattern puts every CONV and POOL before the first FC")
        pads = self.pads
        if c.get("padding") == "same" and pads is not None:
            self.refuse(entry, "pads twice (a padding layer, then padding='same'); the pattern "
                        "pads a window once")
        explicit = pads if pads is not None else tuple((0, 0) for _ in kernel)
        w = window(self.spatial, kernel, stride, dilation,
                   "same" if c.get("padding") == "same" else explicit,
                   lambda message: self.refuse(entry, message), ceil_first=max_pool)
        self.pads = None
        self.spatial = w.spatial
        return w

    def _conv(self, entry: dict, c: dict) -> None:
        if self.pads is not None and self.pad_fill != "zero":
            self.refuse(entry, "follows a padding with -inf; a convolution's padding is zeros")
        kernel, stride = tuple(c["kernel_size"]), tuple(c["strides"])
        dilation = tuple(c.get("dilation_rate", (1,) * len(kernel)))
        w = self._window_of(entry, c, kernel, stride, dilation)
        self.layers.append(ir.Conv(c["name"], int(c["filters"]), kernel, stride, w.padding,
                                   dilation, int(c.get("groups", 1)),
                                   bool(c.get("use_bias", True)), w.rounding,
                                   self._origin(entry)))

    def _pool(self, entry: dict, c: dict, mode: str) -> None:
        if self.pads is not None and (self.pad_fill == "min") != (mode == "max"):
            self.refuse(entry, f"follows a padding with {self.pad_fill} values; a blueprint "
                        "pads max pooling with -inf and average pooling with zeros")
        size = tuple(c["pool_size"])
        stride = tuple(c.get("strides") or size)
        w = self._window_of(entry, c, size, stride, (1,) * len(size), mode == "max")
        self.layers.append(ir.Pool(c["name"], mode, size, stride, w.padding, w.rounding,
                                   self._origin(entry)))

    def _activation(self, entry: dict, fn: Any, name: str) -> None:
        if isinstance(fn, dict):  # a serialized function: {"config": "relu", ...}
            fn = fn.get("config") if isinstance(fn.get("config"), str) else fn.get("class_name")
        if fn in (None, "linear"):
            return
        if fn == "softmax":
            self._softmax(entry)
            return
        token = _ACTIVATIONS.get(str(fn))
        if token is None:
            self.refuse(entry, f"uses the activation {fn!r}, which has no token; the pattern's "
                        "activations are relu, leaky_relu, elu, tanh, sigmoid, gelu, swish")
        alpha = {"ELU": 1.0, "LEAKY_RELU": 0.2}.get(token)  # Keras's defaults for the names
        self.layers.append(ir.Activation(name, token, alpha, self._origin(entry)))

    def _softmax(self, entry: dict) -> None:
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, ir.Dense) or last.softmax:
            self.refuse(entry, "is a softmax that does not follow a Dense layer; the pattern "
                        "has one softmax, the classifier: FC(classes)-SOFTMAX at the end")
        self.layers[-1] = ir.Dense(last.name, last.units, last.bias, True, last.origin)

    def _batch_norm(self, entry: dict, c: dict) -> None:
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        rank = len(self.spatial) + 1 if self.spatial is not None else 1
        if axis not in (-1, rank) or not c.get("center", True) or not c.get("scale", True):
            self.refuse(entry, "normalizes another axis or lacks its offset or scale; the "
                        "pattern's BN normalizes channels (axis -1) with both")
        self.layers.append(ir.BatchNorm(c["name"], float(c.get("momentum", 0.99)),
                                        float(c.get("epsilon", 1e-3)), self._origin(entry)))

    def _classifier(self, entries: list[dict]) -> None:
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, ir.Dense) or not last.softmax:
            self.refuse(entries[-1], "ends the net, but the pattern ends with its classifier: a "
                        "Dense layer with a softmax (activation='softmax', or a Softmax layer "
                        "after it)")
        for layer in self.layers[:-1]:
            if isinstance(layer, ir.Dense) and layer.softmax:
                entry = next(e for e in entries if e["config"]["name"] == layer.name)
                self.refuse(entry, "has a softmax before the end; the pattern has one softmax, "
                            "the classifier's, as the last layer")
