"""Keras agrees with the static analysis: shapes and parameter counts, layer by layer."""
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnbp.builder import load, load_expression
from cnnbp.builder.errors import BlueprintError
from tests.conftest import SHIPPED, SMALL


def assert_agrees(keras, compiled):
    from cnnbp.builder.keras_builder import build_model
    model = build_model(compiled.network)
    try:
        by_name = {layer.name: layer for layer in model.layers}
        for stats in compiled.analysis.layers:
            layer = by_name[stats.name]
            assert tuple(layer.output.shape[1:]) == stats.output_shape, stats.name
            assert layer.count_params() == stats.params, stats.name
        assert model.count_params() == compiled.analysis.total_params
        assert tuple(model.output.shape[1:]) == (compiled.network.classes,)
    finally:
        keras.backend.clear_session()


@pytest.mark.parametrize("name", SMALL)
def test_small_shipped_blueprints_agree(keras, name):
    assert_agrees(keras, load(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(SHIPPED) - set(SMALL)))
def test_large_shipped_blueprints_agree(keras, name):
    assert_agrees(keras, load(name))


# --- randomly generated valid blueprints ---------------------------------------------------
@st.composite
def nets(draw):
    rank = draw(st.sampled_from([1, 2]))
    size = draw(st.integers(8, 24))
    channels = draw(st.integers(1, 4))
    shape = "x".join([str(size)] * rank + [str(channels)])
    parts = [f"INPUT({shape})"]
    for _ in range(draw(st.integers(1, 2))):
        for _ in range(draw(st.integers(1, 2))):
            groups = draw(st.sampled_from([1, 1, 2])) if channels % 2 == 0 else 1
            filters = draw(st.integers(1, 4)) * groups
            stride = draw(st.integers(1, 2))
            dilation = draw(st.integers(1, 2)) if stride == 1 else 1
            pad = draw(st.sampled_from(["valid", "same", "0", "1", "2"]))
            kernel = draw(st.integers(1, 3))
            rounding = draw(st.sampled_from(["floor", "ceil"]))
            parts.append(f"CONV({filters}, {kernel}, stride={stride}, padding={pad}, "
                         f"dilation={dilation}, groups={groups}, rounding={rounding}, "
                         f"bias={draw(st.sampled_from(['true', 'false']))})")
            parts.append(draw(st.sampled_from(["RELU", "TANH", "LEAKY_RELU(0.2)", "ELU", "GELU",
                                               "SWISH", "SIGMOID", "BN-RELU"])))
            channels = filters
        if draw(st.booleans()):
            mode = draw(st.sampled_from(["max", "avg"]))
            rounding = draw(st.sampled_from(["floor", "ceil"] if mode == "max" else ["floor"]))
            pad = draw(st.sampled_from(["valid", "same", "1"] if mode == "max"
                                       else ["valid", "same"]))
            parts.append(f"POOL({mode}, {draw(st.integers(1, 3))}, {draw(st.integers(1, 3))}, "
                         f"padding={pad}, rounding={rounding})")
        if draw(st.booleans()):
            parts.append("LRN(3)")
    parts.append(draw(st.sampled_from(["FLATTEN", "GLOBAL_POOL(max)", "GLOBAL_POOL(avg)",
                                       "DROPOUT(0.1)"])))
    for _ in range(draw(st.integers(0, 2))):
        activation = draw(st.sampled_from(["RELU", "TANH", "BN"]))
        parts.append(f"FC({draw(st.integers(1, 16))})-{activation}")
    parts.append(draw(st.sampled_from(["SOFTMAX", f"FC({draw(st.integers(2, 5))})-SOFTMAX"])))
    return "-".join(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=nets())
def test_random_valid_blueprints_agree_with_keras(keras, pattern):
    try:
        compiled = load_expression(pattern, ["strict=false", "classes=5"] if "FC(" not in
                                   pattern.rsplit("-", 2)[-2] else ["strict=false"])
    except BlueprintError as exc:
        assume("must stay >= 1" not in str(exc) and "last FC before SOFTMAX" not in str(exc))
        raise
    assert_agrees(keras, compiled)
