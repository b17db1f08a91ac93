"""The published figures of ../shared/REFERENCES.md, reproduced exactly."""
import pytest

from cnnbp.builder import load, load_expression
from cnnbp.builder.errors import BlueprintError

# (blueprint, params, MACs or None) — REFERENCES.md, "Architectures"
FIGURES = [
    ("lenet5", 61_706, 416_520),
    ("alexnet", 62_378_344, 1_135_256_096),
    ("alexnet_grouped", 60_965_224, None),
    ("vgg11", 132_863_336, 7_609_090_048),
    ("vgg11_lrn", 132_863_336, None),
    ("vgg13", 133_047_848, 11_308_466_176),
    ("vgg16_c", 133_638_952, 11_770_888_192),
    ("vgg16", 138_357_544, 15_470_264_320),
    ("vgg19", 143_667_240, 19_632_062_464),
]


@pytest.mark.parametrize("name,params,macs", FIGURES)
def test_published_params_and_macs(name, params, macs):
    a = load(name).analysis
    assert a.total_params == params
    if macs is not None:
        assert a.total_macs == macs


def test_alexnet_conv1_line():
    conv1 = load("alexnet").analysis.layers[0]
    assert conv1.output_shape == (55, 55, 96) and conv1.params == 34_944
    assert conv1.description == "96 11x11 filters at stride 4, pad 0"


def test_alexnet_layer_sizes():
    shapes = {s.name: s.output_shape for s in load("alexnet").analysis.layers}
    assert shapes["stage1_pool"] == (27, 27, 96)
    assert shapes["stage2_conv1"] == (27, 27, 256)
    assert shapes["stage2_pool"] == (13, 13, 256)
    assert shapes["stage3_pool"] == (6, 6, 256)


def test_lenet5_layer_sizes():
    a = load("lenet5").analysis
    convs = [s.output_shape for s in a.layers if s.type == "CONV"]
    pools = [s.output_shape for s in a.layers if s.type == "POOL"]
    assert convs == [(28, 28, 6), (10, 10, 16), (1, 1, 120)]
    assert pools == [(14, 14, 6), (5, 5, 16)]


def test_lecture_760_parameter_example():
    a = load_expression("INPUT(32x32x3)-CONV(10, 5x5, stride=1, pad=2)-RELU-POOL-FC(10)-SOFTMAX")
    conv = a.analysis.layers[0]
    assert conv.output_shape == (32, 32, 10)
    assert conv.params == 5 * 5 * 3 * 10 + 10 == 760


def test_lecture_doesnt_fit_example():
    with pytest.raises(BlueprintError) as exc:
        load_expression("INPUT(7x7x1)-CONV(1, 3x3, stride=3)-SOFTMAX", ["classes=2"])
    assert "(7 - 3)/3 + 1 = 2.33" in str(exc.value)
    assert "stride 3 does not tile 7" in str(exc.value)
    assert "stage1_conv1" in str(exc.value)


@pytest.mark.parametrize("stride,size", [(1, 5), (2, 3)])
def test_lecture_examples_that_fit(stride, size):
    a = load_expression(f"INPUT(7x7x1)-CONV(1, 3, stride={stride})-SOFTMAX", ["classes=2"])
    assert a.analysis.layers[0].output_shape == (size, size, 1)


def test_vgg16_receptive_field_of_the_last_conv():
    # Each 3x3 conv adds 2 * jump and each 2x2 pool adds 1 * jump, then doubles it:
    # stage 5 starts at RF 100 with jump 16; three convs give 100 + 3*32 = 196, the pool 212.
    layers = {s.name: s for s in load("vgg16").analysis.layers}
    assert layers["stage5_conv3"].receptive_field == (196, 196)
    assert layers["stage5_pool"].receptive_field == (212, 212)
    assert layers["stage5_pool"].jump == (32, 32)
