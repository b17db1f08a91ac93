"""IR → per-layer shapes, parameters, MACs, receptive field and memory; no TensorFlow.

Impossible layers are reported with their arithmetic, e.g.
``stage1_conv1 (CONV 3x3, stride 3): input 7x7x1 -> (7 - 3)/3 + 1 = 2.33; stride 3 does
not tile 7``. Keras must agree with every shape and parameter count computed here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import ir
from .errors import BlueprintError, Problem
from .shapes import Extent, effective_kernel, same_extent, window_extent

BYTES_PER_VALUE = 4  # float32 activations


@dataclass(frozen=True)
class LayerStats:
    """What the analysis found for one layer, as the ``show`` table prints it."""
    name: str
    type: str                       # CONV, POOL, FC, ... or the activation's token
    output_shape: tuple[int, ...]   # channels-last, no batch axis
    params: int
    macs: int
    receptive_field: tuple[int, ...]  # per spatial axis, in input positions
    jump: tuple[int, ...]             # distance in input positions between neighbours
    memory: int                       # bytes of this layer's float32 output per sample
    description: str


@dataclass(frozen=True)
class Analysis:
    """A checked network and its per-layer statistics, in layer order."""
    network: ir.Network
    layers: tuple[LayerStats, ...]

    @property
    def total_params(self) -> int:
        """Trainable and non-trainable parameters of the whole net."""
        return sum(s.params for s in self.layers)

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates for one input, all layers."""
        return sum(s.macs for s in self.layers)

    @property
    def total_memory(self) -> int:
        """Bytes of every layer's float32 output for one input."""
        return sum(s.memory for s in self.layers)

    def to_json(self) -> dict:
        """The ``cnnbp check --json`` document."""
        net = self.network
        return {
            "name": net.name,
            "input_shape": list(net.input_shape),
            "classes": net.classes,
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "total_activation_bytes": self.total_memory,
            "layers": [{
                "name": s.name, "type": s.type, "output_shape": list(s.output_shape),
                "params": s.params, "macs": s.macs,
                "receptive_field": list(s.receptive_field), "jump": list(s.jump),
                "activation_bytes": s.memory, "description": s.description,
            } for s in self.layers],
        }


def fmt_shape(shape) -> str:
    """``(6, 6, 4)`` → ``6x6x4``."""
    return "x".join(str(d) for d in shape)


def fmt_size(size) -> str:
    """``(4, 4)`` → ``4``; ``(3, 1)`` → ``3x1``."""
    return str(size[0]) if len(set(size)) == 1 else fmt_shape(size)


def _pads_text(padding) -> str:
    if padding == "valid":
        return "pad 0"
    if padding == "same":
        return "pad same"
    sides = {p for pair in padding for p in pair}
    if len(sides) == 1:
        return f"pad {sides.pop()}"
    return "pad " + "x".join(str(a) for a, _ in padding)


class _Walker:
    def __init__(self, net: ir.Network):
        self.net = net
        self.shape = net.input_shape
        self.rf = (1,) * net.spatial_rank
        self.jump = (1,) * net.spatial_rank
        self.problems: list[Problem] = []
        self.stats: list[LayerStats] = []

    def fail(self, layer, message: str, what: str | None = None) -> None:
        problem = Problem(layer.name, f"({what or layer.kind}; pattern {layer.origin}) {message}")
        if problem not in self.problems:  # square windows fail the same way on every axis
            self.problems.append(problem)

    def window(self, layer, kernel, stride, padding, dilation, rounding) -> tuple[int, ...] | None:
        """Spatial output of a sliding window; None when the layer is impossible."""
        spatial = self.shape[:-1]
        out = []
        what = f"{layer.kind} {fmt_shape(kernel)}, stride {fmt_size(stride)}"
        for axis, n in enumerate(spatial):
            k, s = kernel[axis], stride[axis]
            d = dilation[axis] if dilation else 1
            if padding == "same":
                ext: Extent = same_extent(n, s)
            else:
                before, after = (0, 0) if padding == "valid" else padding[axis]
                ext = window_extent(n, k, s, before, after, d, ceil=rounding == "ceil")
            where = f"input {fmt_shape(self.shape)} -> {ext.formula}"
            if ext.length < 1:
                rounded = f", rounded to {ext.length}" if not ext.tiles and ext.length == 0 else ""
                self.fail(layer, f"{where}{rounded}, below 1: the window "
                          f"{effective_kernel(k, d)} is larger than the padded input {n}, and the "
                          "spatial size must stay >= 1 — remove a POOL, add padding, or use a "
                          "larger input", what)
                return None
            if not ext.tiles and rounding is None and self.net.strict:
                self.fail(layer, f"{where} — stride {s} does not tile {n}; change the padding or "
                          "stride so it divides exactly, or set rounding: floor or ceil on the "
                          "layer (or strict: false for the whole blueprint)", what)
            out.append(ext.length)
            self.rf = tuple(r + (effective_kernel(kk, d) - 1) * j if i == axis else r
                            for i, (r, j, kk) in enumerate(zip(self.rf, self.jump, kernel)))
        self.jump = tuple(j * s for j, s in zip(self.jump, stride))
        return tuple(out)

    def cover_all(self) -> None:
        """A layer that sees every position: its field spans the whole map."""
        self.rf = tuple(r + (n - 1) * j for r, j, n in zip(self.rf, self.jump, self.shape[:-1]))

    def step(self, layer: ir.Layer) -> bool:
        channels = self.shape[-1]
        params = macs = 0
        kind = layer.kind
        if isinstance(layer, ir.Conv):
            if channels % layer.groups or layer.filters % layer.groups:
                self.fail(layer, f"groups {layer.groups} must divide both the input channels "
                          f"({channels}) and the filters ({layer.filters}): {channels} % "
                          f"{layer.groups} = {channels % layer.groups}, {layer.filters} % "
                          f"{layer.groups} = {layer.filters % layer.groups}")
                return False
            if max(layer.stride) > 1 and max(layer.dilation) > 1:
                self.fail(layer, f"stride {fmt_size(layer.stride)} with dilation "
                          f"{fmt_size(layer.dilation)}: TensorFlow's convolution cannot stride "
                          "and dilate at once; keep one of them at 1")
                return False
            spatial = self.window(layer, layer.kernel, layer.stride, layer.padding,
                                  layer.dilation, layer.rounding)
            if spatial is None:
                return False
            fan_in = math.prod(layer.kernel) * channels // layer.groups
            params = fan_in * layer.filters + (layer.filters if layer.bias else 0)
            shape = spatial + (layer.filters,)
            macs = math.prod(shape) * fan_in
            g = f", {layer.groups} groups" if layer.groups > 1 else ""
            dil = f", dilation {fmt_shape(layer.dilation)}" if max(layer.dilation) > 1 else ""
            size = f"{fmt_shape(layer.kernel)} filters" if len(layer.kernel) > 1 else \
                f"filters of width {layer.kernel[0]}"  # "15 3 filters" reads as two numbers
            desc = (f"{layer.filters} {size} at stride {fmt_size(layer.stride)}, "
                    f"{_pads_text(layer.padding)}{dil}{g}")
        elif isinstance(layer, ir.Pool):
            if layer.mode == "avg" and layer.rounding == "ceil":
                self.fail(layer, "rounding: ceil is supported for max pooling only: frameworks "
                          "disagree on how an average over a window hanging past the edge is "
                          "divided (Caffe vs PyTorch); use floor, or explicit padding")
                return False
            spatial = self.window(layer, layer.size, layer.stride, layer.padding, None,
                                  layer.rounding)
            if spatial is None:
                return False
            shape = spatial + (channels,)
            r = f", {layer.rounding}" if layer.rounding else ""
            desc = (f"{layer.mode} {fmt_shape(layer.size)} at stride {fmt_size(layer.stride)}, "
                    f"{_pads_text(layer.padding)}{r}")
        elif isinstance(layer, (ir.GlobalPool, ir.Flatten)):
            self.cover_all()
            shape = (channels,) if isinstance(layer, ir.GlobalPool) else (math.prod(self.shape),)
            desc = f"global {layer.mode} pool" if isinstance(layer, ir.GlobalPool) else "flatten"
        elif isinstance(layer, ir.Dense):
            fan_in = self.shape[-1]
            params = fan_in * layer.units + (layer.units if layer.bias else 0)
            macs = fan_in * layer.units
            shape = (layer.units,)
            desc = f"{layer.units} neurons" + (", softmax" if layer.softmax else "")
        elif isinstance(layer, ir.BatchNorm):
            params = 4 * channels  # gamma, beta and the two moving statistics
            shape, desc = self.shape, "batch normalization"
        elif isinstance(layer, ir.LRN):
            if layer.size % 2 == 0:
                self.fail(layer, f"size {layer.size} must be odd: the window is centred on "
                          "each channel (n = 5 in AlexNet)")
                return False
            shape = self.shape
            desc = (f"LRN n={layer.size}, alpha={layer.alpha:g}, beta={layer.beta:g}, "
                    f"k={layer.bias:g}")
        elif isinstance(layer, ir.Dropout):
            shape, desc = self.shape, f"dropout {layer.rate:g}"
        else:
            assert isinstance(layer, ir.Activation)
            kind = layer.fn
            shape = self.shape
            desc = layer.fn.lower() + (f" alpha={layer.alpha:g}" if layer.alpha is not None else "")
        self.shape = shape
        self.stats.append(LayerStats(layer.name, kind, shape, params, macs, self.rf, self.jump,
                                     math.prod(shape) * BYTES_PER_VALUE, desc))
        return True


def analyze(net: ir.Network) -> Analysis:
    """Walk ``net`` once; raise BlueprintError naming every impossible layer."""
    walker = _Walker(net)
    for layer in net.layers:
        if not walker.step(layer):
            break
    if walker.problems:
        shape = net.input_shape
        if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] > 4:  # [3, 32, 32]
            walker.problems.append(Problem("input", f"{list(shape)} looks channels-first; "
                                           "input is [height, width, channels] (channels last): "
                                           f"did you mean {[shape[1], shape[2], shape[0]]}?"))
        raise BlueprintError(walker.problems)
    return Analysis(net, tuple(walker.stats))
