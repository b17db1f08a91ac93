"""IR → Keras functional model with the IR's layer names and seeded initialization."""
from __future__ import annotations

import keras

from . import ir
from .keras_layers import EdgePad, ExactGelu, LocalResponseNorm
from .shapes import effective_kernel, window_extent

_ACTIVATION = {"RELU": "relu", "TANH": "tanh", "SIGMOID": "sigmoid", "SWISH": "silu"}


def build_model(net: ir.Network) -> keras.Model:
    """Build ``net``; the same network and seed always give the same weights."""
    x = inputs = keras.Input(net.input_shape, name="input")
    rank = net.spatial_rank
    for index, layer in enumerate(net.layers):
        for keras_layer in _layers(layer, net, rank, index, x.shape):
            x = keras_layer(x)
    return keras.Model(inputs, x, name=net.name)


def _init(name: str, seed: int):
    try:
        return keras.initializers.get({"class_name": name, "config": {"seed": seed}})
    except TypeError:  # constant initializers take no seed
        return keras.initializers.get(name)


def _weights(net: ir.Network, index: int) -> dict:
    w = net.weights
    return {"kernel_initializer": _init(w.init, w.seed * 1000 + index),
            "bias_initializer": _init(w.bias_init, w.seed * 1000 + index + 500),
            "kernel_regularizer": keras.regularizers.L2(w.l2) if w.l2 > 0 else None}


def _window_padding(layer, kernel, dilation, spatial, fill: str):
    """Return (keras padding, pad layer or None) for a window layer."""
    if layer.padding == "same" or (layer.padding == "valid" and layer.rounding != "ceil"):
        return layer.padding, None  # "same" always gives ceil(N/S): rounding cannot change it
    pads = [(0, 0)] * len(kernel) if layer.padding == "valid" else list(layer.padding)
    if layer.rounding == "ceil":
        # Extend the far side so a floor-rounding Keras window yields the ceil size.
        for axis, n in enumerate(spatial):
            before, after = pads[axis]
            span = effective_kernel(kernel[axis], dilation[axis])
            s = layer.stride[axis]
            out = window_extent(n, kernel[axis], s, before, after, dilation[axis], ceil=True).length
            pads[axis] = (before, after + max((out - 1) * s + span - (n + before + after), 0))
    if all(s == 1 for s in layer.stride) and all(
            a == b and a + b == effective_kernel(k, d) - 1
            for (a, b), k, d in zip(pads, kernel, dilation)):
        return "same", None
    if not any(a or b for a, b in pads):
        return "valid", None
    return "valid", EdgePad(tuple(pads), fill, name=f"{layer.name}_pad")


def _layers(layer: ir.Layer, net: ir.Network, rank: int, index: int, shape) -> list:
    L = keras.layers
    spatial = shape[1:-1]
    if isinstance(layer, ir.Conv):
        padding, pad = _window_padding(layer, layer.kernel, layer.dilation, spatial, "zero")
        conv = (L.Conv1D if rank == 1 else L.Conv2D)(
            layer.filters, layer.kernel, strides=layer.stride, padding=padding,
            dilation_rate=layer.dilation, groups=layer.groups, use_bias=layer.bias,
            name=layer.name, **_weights(net, index))
        return [pad, conv] if pad else [conv]
    if isinstance(layer, ir.Pool):
        fill = "min" if layer.mode == "max" else "zero"
        padding, pad = _window_padding(layer, layer.size, (1,) * rank, spatial, fill)
        cls = {("max", 1): L.MaxPooling1D, ("max", 2): L.MaxPooling2D,
               ("avg", 1): L.AveragePooling1D, ("avg", 2): L.AveragePooling2D}[layer.mode, rank]
        pool = cls(layer.size, strides=layer.stride, padding=padding, name=layer.name)
        return [pad, pool] if pad else [pool]
    if isinstance(layer, ir.GlobalPool):
        cls = {("max", 1): L.GlobalMaxPooling1D, ("max", 2): L.GlobalMaxPooling2D,
               ("avg", 1): L.GlobalAveragePooling1D, ("avg", 2): L.GlobalAveragePooling2D}
        return [cls[layer.mode, rank](name=layer.name)]
    if isinstance(layer, ir.Activation):
        if layer.fn == "LEAKY_RELU":
            return [L.LeakyReLU(negative_slope=layer.alpha, name=layer.name)]
        if layer.fn == "ELU":
            return [L.ELU(alpha=layer.alpha, name=layer.name)]
        if layer.fn == "GELU":
            return [ExactGelu(name=layer.name)]
        return [L.Activation(_ACTIVATION[layer.fn], name=layer.name)]
    if isinstance(layer, ir.BatchNorm):
        return [L.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon,
                                     name=layer.name)]
    if isinstance(layer, ir.LRN):
        return [LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.bias,
                                  name=layer.name)]
    if isinstance(layer, ir.Dropout):
        return [L.Dropout(layer.rate, seed=net.weights.seed * 1000 + index, name=layer.name)]
    if isinstance(layer, ir.Flatten):
        return [L.Flatten(name=layer.name)]
    assert isinstance(layer, ir.Dense)
    # The classifier stays float32 under mixed precision so the softmax is computed exactly.
    return [L.Dense(layer.units, activation="softmax" if layer.softmax else None,
                    use_bias=layer.bias, name=layer.name,
                    dtype="float32" if layer.softmax else None, **_weights(net, index))]


def save_model(model: keras.Model, path: str) -> None:
    """Write ``model`` to ``path`` (.keras) through a temporary file, so no half file remains."""
    from cnnbp.contract.atomic import atomic_path

    from .errors import check_keras_path
    from .tf_env import tensorflow_left_unimported
    check_keras_path(path)
    with atomic_path(path, suffix=".keras") as tmp, tensorflow_left_unimported():
        model.save(tmp)
