"""The Keras builder: stable names, seeded weights, safe reloading, custom layers' numerics."""
import json

import numpy as np
import pytest

from cnnbp.builder import load, load_expression
from cnnbp.builder.schema import BIAS_INITIALIZERS, INITIALIZERS

CUSTOM = ("INPUT(9x9x6)-CONV(6, 3, pad=1)-RELU-LRN(5, alpha=0.01, beta=0.75, bias=2)-"
          "POOL(3, 2, rounding=ceil)-FC(7)-SOFTMAX")


def weights(model):
    return [w.copy() for w in model.get_weights()]


def test_layer_names_follow_the_blueprint(keras):
    from cnnbp.builder.keras_builder import build_model
    names = [layer.name for layer in build_model(load("vgg16", ["layers.CONV.filters=1",
                                                               "layers.FC.units=2",
                                                               "input=[32,32,1]"]).network).layers]
    assert names[:6] == ["input", "stage1_conv1", "stage1_relu1", "stage1_conv2", "stage1_relu2",
                         "stage1_pool"]
    assert "stage5_conv3" in names
    assert names[-8:] == ["flatten", "fc1", "fc1_relu", "fc1_dropout", "fc2", "fc2_relu",
                          "fc2_dropout", "predictions"]


def test_same_seed_same_weights_other_seed_other_weights(keras):
    from cnnbp.builder.keras_builder import build_model
    net = load("digits").network
    first, second = weights(build_model(net)), weights(build_model(net))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = weights(build_model(load("digits", ["weights.seed=7"]).network))
    assert not np.array_equal(first[0], other[0])


def test_saved_model_reloads_identically_in_safe_mode(keras, tmp_path):
    from cnnbp.builder.keras_builder import build_model, save_model
    model = build_model(load_expression(CUSTOM).network)
    path = tmp_path / "m.keras"
    save_model(model, str(path))
    assert not [p for p in tmp_path.iterdir() if p.name != "m.keras"], "temporary file left behind"
    again = keras.models.load_model(path, safe_mode=True)
    as_json = lambda m: json.loads(json.dumps(m.get_config()))  # tuples come back as lists
    assert as_json(again) == as_json(model)
    assert all(np.array_equal(a, b) for a, b in zip(weights(model), weights(again)))
    x = np.random.default_rng(0).normal(size=(3, 9, 9, 6)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_lrn_matches_the_alexnet_formula(keras):
    from cnnbp.builder.keras_layers import LocalResponseNorm
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 7)).astype("float32")
    n, alpha, beta, k = 5, 0.01, 0.75, 2.0
    got = np.asarray(LocalResponseNorm(n, alpha, beta, k)(x))
    want = np.empty_like(x)
    for c in range(7):  # Krizhevsky et al. 2012, section 3.3
        lo, hi = max(0, c - n // 2), min(6, c + n // 2)
        want[..., c] = x[..., c] / (k + alpha * (x[..., lo:hi + 1] ** 2).sum(-1)) ** beta
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ceil_max_pool_keeps_the_partial_window(keras):
    from cnnbp.builder.keras_builder import build_model
    net = load_expression("INPUT(5x5x1)-POOL(2, 2, rounding=ceil)-SOFTMAX", ["classes=2"]).network
    model = build_model(net)
    pooled = keras.Model(model.input, model.get_layer("stage1_pool").output)
    x = -np.arange(25, dtype="float32").reshape(1, 5, 5, 1)  # all <= 0: zero padding would win
    got = np.asarray(pooled(x))[0, :, :, 0]
    want = np.array([[x[0, r:r + 2, c:c + 2, 0].max() for c in (0, 2, 4)] for r in (0, 2, 4)])
    np.testing.assert_array_equal(got, want)


def test_explicit_padding_that_equals_same_adds_no_layer(keras):
    from cnnbp.builder.keras_builder import build_model
    model = build_model(load("vgg11", ["input=[32,32,1]", "layers.CONV.filters=1",
                                       "layers.FC.units=2"]).network)
    assert not [layer for layer in model.layers if layer.name.endswith("_pad")]
    assert model.get_layer("stage1_conv1").padding == "same"


def test_l2_weight_decay_is_applied(keras):
    from cnnbp.builder.keras_builder import build_model
    model = build_model(load("digits", ["weights.l2=0.001"]).network)
    assert model.get_layer("stage1_conv1").kernel_regularizer is not None
    assert len(model.losses) == 6  # one penalty per CONV and FC kernel


@pytest.mark.parametrize("name", INITIALIZERS)
def test_every_allowed_kernel_initializer_builds(keras, name):
    from cnnbp.builder.keras_builder import build_model
    model = build_model(load("lenet5", [f"weights.init={name}"]).network)
    assert model.count_params() == 61_706


@pytest.mark.parametrize("name", BIAS_INITIALIZERS)
def test_every_allowed_bias_initializer_builds(keras, name):
    from cnnbp.builder.keras_builder import build_model
    model = build_model(load("lenet5", [f"weights.bias_init={name}"]).network)
    assert model.count_params() == 61_706


def test_exact_gelu_matches_keras_gelu(keras):
    from cnnbp.builder.keras_layers import ExactGelu
    x = np.linspace(-6, 6, 101, dtype="float32")
    np.testing.assert_allclose(np.asarray(ExactGelu()(x)),
                               np.asarray(keras.activations.gelu(x, approximate=False)), atol=1e-6)
