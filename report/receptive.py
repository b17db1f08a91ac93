"""Analysis → where on the input a unit of a layer looks: its receptive field as index ranges.

The analyzer gives each layer's field size ``rf`` and ``jump`` (input positions between
neighbouring units); the first unit's field starts at ``start``, which each window layer moves
back by its leading padding times the jump before it. Unit ``i`` then sees
``[start + i*jump, start + i*jump + rf)``, clipped to the input. No TensorFlow.
"""
from __future__ import annotations

from cnnbp.builder import ir
from cnnbp.builder.analysis import Analysis
from cnnbp.builder.shapes import same_pads


def starts(analysis: Analysis) -> dict[str, tuple[int, ...]]:
    """Each layer's first-unit field start per spatial axis (negative: it begins in padding).

    >>> from cnnbp.builder import load_expression
    >>> a = load_expression("INPUT(9x9x1)-CONV(2,3,pad=1)-RELU-CONV(2,3,stride=2,pad=1)-FC(3)-"
    ...                     "SOFTMAX").analysis
    >>> starts(a)["stage1_conv1"], starts(a)["stage1_conv2"]
    ((-1, -1), (-2, -2))
    """
    net = analysis.network
    start = (0,) * net.spatial_rank
    jump = (1,) * net.spatial_rank
    shape = net.input_shape
    found = {}
    for layer, stats in zip(net.layers, analysis.layers):
        if isinstance(layer, (ir.Conv, ir.Pool)):
            kernel = layer.kernel if isinstance(layer, ir.Conv) else layer.size
            dilation = layer.dilation if isinstance(layer, ir.Conv) else (1,) * len(kernel)
            if layer.padding == "same":
                before = [same_pads(n, k, s, d)[0] for n, k, s, d in
                          zip(shape[:-1], kernel, layer.stride, dilation)]
            elif layer.padding == "valid":
                before = [0] * len(kernel)
            else:
                before = [a for a, _ in layer.padding]
            # ceil rounding pads only after the input, so the start does not move
            start = tuple(s - p * j for s, p, j in zip(start, before, jump))
        found[stats.name] = start
        jump, shape = stats.jump, stats.output_shape
    return found


def field(analysis: Analysis, layer: str, unit: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``(first, last + 1)`` input positions per spatial axis seen by ``unit`` of ``layer``."""
    stats = {s.name: s for s in analysis.layers}[layer]
    start = starts(analysis)[layer]
    size = analysis.network.input_shape[:-1]
    return tuple((max(0, s + i * j), min(n, s + i * j + r))
                 for s, i, j, r, n in zip(start, unit, stats.jump, stats.receptive_field, size))


def centre(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The middle unit of a layer's output (channels-last shape)."""
    return tuple(n // 2 for n in shape[:-1])
