"""The receptive field drawn by ``explain`` (analyzer RF and jump, plus the padding offset) is
exactly the set of input positions whose gradient reaches the unit."""
import doctest

import numpy as np
import pytest

from cnnbp.builder import build_model, load_expression
from cnnbp.report import receptive

# Padding, a strided conv, average pooling and a dilated conv: every way the field grows or moves.
NET = ("INPUT(19x19x1)-CONV(2,3,pad=1)-RELU-CONV(2,3,stride=2,pad=1)-RELU-POOL(2,type=avg)-"
       "CONV(2,3,dilation=2,pad=2)-RELU-FC(3)-SOFTMAX")


def test_doctests():
    result = doctest.testmod(receptive)
    assert result.attempted > 0 and result.failed == 0


def test_fields_by_hand():
    a = load_expression(NET).analysis
    # stage1_conv2 (RF 5, jump 2) starts at -1 - 1*1 = -2: unit 0 sees [-2, 3) -> [0, 3)
    assert receptive.field(a, "stage1_conv2", (0, 0)) == ((0, 3), (0, 3))
    # unit 4 sees [-2 + 8, -2 + 8 + 5) = [6, 11)
    assert receptive.field(a, "stage1_conv2", (4, 4)) == ((6, 11), (6, 11))
    # the pool (RF 7, jump 4) keeps the start: unit 2 sees [6, 13)
    assert receptive.field(a, "stage1_pool", (2, 1)) == ((6, 13), (2, 9))


@pytest.fixture(scope="module")
def positive_model(keras):
    """Positive weights, zero biases: for a positive input every ReLU passes, so a gradient is
    non-zero exactly where the unit's field reaches."""
    compiled = load_expression(NET)
    model = build_model(compiled.network)
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.1, 1.0, w.shape).astype("float32") if w.ndim > 1
                       else np.zeros_like(w) for w in model.get_weights()])
    return compiled.analysis, model


@pytest.mark.parametrize("layer,unit", [
    ("stage1_conv1", (0, 0)), ("stage1_conv1", (9, 18)),
    ("stage1_relu2", (0, 0)), ("stage1_relu2", (5, 3)), ("stage1_relu2", (9, 9)),
    ("stage1_pool", (0, 0)), ("stage1_pool", (2, 2)), ("stage1_pool", (4, 1)),
    ("stage2_conv1", (0, 0)), ("stage2_conv1", (2, 2)), ("stage2_conv1", (0, 2)),
])
def test_field_equals_the_gradient_support(keras, positive_model, layer, unit):
    analysis, _ = positive_model
    reached = gradient_support(keras, positive_model, layer, unit)
    (r0, r1), (c0, c1) = receptive.field(analysis, layer, unit)
    assert tuple(reached.min(0)) == (r0, c0) and tuple(reached.max(0) + 1) == (r1, c1)
    if not layer.startswith("stage2"):
        # Without dilation the field is solid: every position inside it reaches the unit.
        # The dilated conv samples pool units 8 inputs apart that each see 7, so its field
        # has one-pixel gaps inside the same extent.
        assert len(reached) == (r1 - r0) * (c1 - c0)


def gradient_support(keras, positive_model, layer, unit) -> np.ndarray:
    """Input positions (row, col) whose gradient on channel 0 of ``unit`` is non-zero."""
    import tensorflow as tf
    _, model = positive_model
    probe = keras.Model(model.input, model.get_layer(layer).output)
    x = tf.Variable(np.random.default_rng(1).uniform(0.5, 1.0, (1, 19, 19, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        value = probe(x)[0, unit[0], unit[1], 0]
    return np.argwhere(tape.gradient(value, x).numpy()[0, ..., 0] != 0)


def test_dilated_field_at_the_edge_is_an_upper_bound(keras, positive_model):
    """A known limit of drawing from RF and jump: when a dilated tap lands in a deeper layer's
    padding, the positions it skipped over are not reached either, so the true support is
    smaller than the analyzer's field clipped to the input. The drawing contains it."""
    analysis, _ = positive_model
    reached = gradient_support(keras, positive_model, "stage2_conv1", (4, 3))
    (r0, r1), (c0, c1) = receptive.field(analysis, "stage2_conv1", (4, 3))
    assert (r0, r1, c0, c1) == (6, 19, 2, 19)
    # columns: taps on pool units 1, 3 and 5 (padding); unit 3 ends at input 16
    assert tuple(reached.min(0)) == (6, 2) and tuple(reached.max(0) + 1) == (19, 17)


def test_figures_doctests():
    from cnnbp.report import figures
    result = doctest.testmod(figures)
    assert result.attempted > 0 and result.failed == 0
