"""Occurrences → typed IR layers: the README's names, the implicit FLATTEN, the classifier."""
import pytest

from cnnbp.builder import ir
from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.expand import expand
from cnnbp.builder.lower import lower
from cnnbp.builder.pattern import parse


def lowered(pattern: str, rank: int = 2, classes: int | None = None):
    return lower(expand(parse(pattern), {}, {}, []), rank, classes)


def test_layers_get_the_documented_names_and_types():
    layers, classes, shape = lowered("INPUT(8x8x1)-(CONV(4,3)-RELU)*2-POOL-FC(16)-RELU-FC(10)-"
                                     "SOFTMAX")
    assert [(type(a).__name__, a.name) for a in layers] == [
        ("Conv", "stage1_conv1"), ("Activation", "stage1_relu1"), ("Conv", "stage1_conv2"),
        ("Activation", "stage1_relu2"), ("Pool", "stage1_pool"), ("Flatten", "flatten"),
        ("Dense", "fc1"), ("Activation", "fc1_relu"), ("Dense", "predictions")]
    assert (classes, shape) == (10, (8, 8, 1))
    assert layers[-1].softmax and layers[-1].units == 10
    assert layers[-3].name == "fc1" and not layers[-3].softmax


def test_a_second_stage_starts_after_a_pool_and_conv_is_always_numbered():
    layers, _, _ = lowered("CONV(4,3)-POOL-CONV(8,3)-RELU-POOL-SOFTMAX", classes=3)
    assert [a.name for a in layers] == ["stage1_conv1", "stage1_pool", "stage2_conv1",
                                        "stage2_relu", "stage2_pool", "flatten", "predictions"]
    assert isinstance(layers[-1], ir.Dense) and layers[-1].units == 3


def test_a_conv_after_the_head_began_is_refused_with_its_position():
    with pytest.raises(BlueprintError, match=r"column 17: CONV needs positions to work over, "
                       r"but the net is already flat here"):
        lowered("CONV(4,3)-FC(8)-CONV(4,3)-SOFTMAX", classes=2)
