"""Layers Keras lacks, registered so ``load_model(..., safe_mode=True)`` restores them.

Written with ``keras.ops`` only, so they run on every Keras 3 backend (TensorFlow, JAX,
PyTorch) and a model trained on one loads and exports on another. Import this module
(``import cnnbp.builder.keras_layers``) before loading a saved model that uses LRN, ceil-mode
or explicitly padded pooling, or GELU.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cnnbp")
class LocalResponseNorm(keras.layers.Layer):
    """AlexNet's LRN across channels: ``a / (k + alpha * sum(a^2 over n channels))^beta``.

    ``alpha`` is the paper's (not divided by ``n``, unlike Caffe and PyTorch). The window is
    ``(size - 1) // 2`` channels either side, as ``tf.nn.local_response_normalization`` takes it.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 bias: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.bias = size, alpha, beta, bias

    def call(self, x):
        """``x / (bias + alpha * sum of squares over size channels) ** beta``."""
        radius = (self.size - 1) // 2
        channels = x.shape[-1]
        # The window sum as shifted slices of the zero-padded squares: plain ops that every
        # backend and tf2onnx handle, with no channel-axis convolution to lay out.
        squares = ops.pad(ops.square(x), [[0, 0]] * (len(x.shape) - 1) + [[radius, radius]])
        total = squares[..., :channels]
        for shift in range(1, 2 * radius + 1):
            total = total + squares[..., shift:shift + channels]
        return x / ops.power(self.bias + self.alpha * total, self.beta)

    def compute_output_shape(self, input_shape):
        """Unchanged: the layer only rescales."""
        return input_shape

    def get_config(self):
        """What a saved ``.keras`` file needs to rebuild the layer."""
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "bias": self.bias}


@keras.saving.register_keras_serializable(package="cnnbp")
class EdgePad(keras.layers.Layer):
    """Pad the spatial axes with zeros, or with -inf so a following max pool ignores it."""

    def __init__(self, pads=((0, 0),), fill: str = "zero", **kwargs):
        super().__init__(**kwargs)
        self.pads = tuple(tuple(int(v) for v in p) for p in pads)
        self.fill = fill

    def call(self, x):
        """``x`` with its spatial axes padded by ``pads``."""
        value = float("-inf") if self.fill == "min" else 0.0
        return ops.pad(x, [[0, 0], *self.pads, [0, 0]], constant_values=value)

    def compute_output_shape(self, input_shape):
        """Each spatial axis longer by its two pads (unknown stays unknown)."""
        spatial = [None if n is None else n + a + b
                   for n, (a, b) in zip(input_shape[1:-1], self.pads)]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self):
        """What a saved ``.keras`` file needs to rebuild the layer."""
        return {**super().get_config(), "pads": [list(p) for p in self.pads], "fill": self.fill}


@keras.saving.register_keras_serializable(package="cnnbp")
class ExactGelu(keras.layers.Layer):
    """GELU without approximation, written with ``erf``.

    Keras's exact gelu lowers to TensorFlow's ``Erfc``, which tf2onnx cannot convert; ``Erf``
    it can, and ``0.5 x (1 + erf(x / sqrt 2))`` is the same function.
    """

    def call(self, x):
        """``0.5 x (1 + erf(x / sqrt 2))``."""
        return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))

    def compute_output_shape(self, input_shape):
        """Unchanged: the activation is element-wise."""
        return input_shape
