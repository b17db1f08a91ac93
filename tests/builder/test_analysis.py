"""The static analysis of an IR network: per-layer shapes, parameters, MACs, receptive field,
memory, worked out by hand here for a small net."""
import pytest

from cnnbp.builder import load_expression
from cnnbp.builder.analysis import BYTES_PER_VALUE, analyze, fmt_shape
from cnnbp.builder.errors import BlueprintError

NET = "INPUT(8x8x1)-CONV(4,3)-RELU-POOL-FC(10)-SOFTMAX"


def test_each_layer_by_hand():
    a = analyze(load_expression(NET).network)
    rows = [(s.name, s.output_shape, s.params, s.macs, s.receptive_field, s.jump, s.memory)
            for s in a.layers]
    assert rows == [
        # 3x3x1 weights + bias per filter; each of 6x6x4 outputs is 9 multiply-adds
        ("stage1_conv1", (6, 6, 4), 4 * (9 + 1), 6 * 6 * 4 * 9, (3, 3), (1, 1), 6 * 6 * 4 * 4),
        ("stage1_relu", (6, 6, 4), 0, 0, (3, 3), (1, 1), 6 * 6 * 4 * 4),
        # a 2x2 window over neighbours 1 apart widens the field by 1; they are now 2 apart
        ("stage1_pool", (3, 3, 4), 0, 0, (4, 4), (2, 2), 3 * 3 * 4 * 4),
        ("flatten", (36,), 0, 0, (8, 8), (2, 2), 36 * 4),  # the field is clipped to the input
        ("predictions", (10,), 36 * 10 + 10, 36 * 10, (8, 8), (2, 2), 10 * 4),
    ]
    assert a.total_params == 410 and a.total_macs == 1296 + 360
    assert a.total_memory == sum(r[-1] for r in rows) and BYTES_PER_VALUE == 4


def test_the_json_document_carries_every_layer():
    a = analyze(load_expression(NET).network)
    doc = a.to_json()
    assert (doc["total_params"], doc["input_shape"], doc["classes"]) == (410, [8, 8, 1], 10)
    assert [row["name"] for row in doc["layers"]] == [s.name for s in a.layers]
    assert fmt_shape((6, 6, 4)) == "6x6x4"


def test_a_map_shrunk_to_nothing_is_refused_with_its_arithmetic():
    with pytest.raises(BlueprintError, match=r"stage1_conv1: .* input 2x2x1 -> "
                                             r"\(2 - 3\)/1 \+ 1 = 0, below 1"):
        load_expression("INPUT(2x2x1)-CONV(4,3)-FC(2)-SOFTMAX")
