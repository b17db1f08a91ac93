"""The request codec on its own: flat and nested JSON data, strict types, binary equals JSON."""
import json

import numpy as np
import pytest

from cnnbp.serve.protocol import BadRequest, TensorSpec, parse_infer


def fp32(*shape):
    return (TensorSpec("input", "FP32", shape),)


def body(data, shape):
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": shape,
                                   "data": data}]}).encode()


@pytest.mark.parametrize("nested", [False, True])
def test_flat_and_nested_json_data(nested):
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 1)).astype("float32")
    data = x.tolist() if nested else x.reshape(-1).tolist()
    got = parse_infer(body(data, [2, 3, 3, 1]), None, fp32(3, 3, 1)).tensor
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("bad", ["[1, , 2]", "[1, 2,]", "[, 1]", '["1", 2]'])
def test_data_that_is_not_a_list_of_numbers_is_refused(bad):
    text = ('{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": '
            + bad + "}]}").encode()
    with pytest.raises(BadRequest):
        parse_infer(text, None, fp32(2))


def test_binary_and_json_give_the_same_tensor():
    x = np.arange(8, dtype="float32").reshape(2, 4)
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4],
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    a = parse_infer(head + raw, str(len(head)), fp32(4)).tensor
    b = parse_infer(body(x.tolist(), [2, 4]), None, fp32(4)).tensor
    np.testing.assert_array_equal(a, b)


def test_uint8_pixels_keep_their_dtype():
    pixels = (TensorSpec("pixels", "UINT8", (2, 2, 1)),)
    x = np.array([[[[0], [255]], [[7], [128]]]], "uint8")
    doc = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2, 1],
                       "data": x.reshape(-1).tolist()}]}
    req = parse_infer(json.dumps(doc).encode(), None, pixels)
    assert req.input_name == "pixels" and req.tensor.dtype == np.uint8
    np.testing.assert_array_equal(req.tensor, x)


def test_json_beyond_the_row_cap_is_refused_before_parsing():
    """64 bytes a value: 2 rows of 4 values may take 512 bytes and the fixed overhead; a text
    over that is refused without being parsed (it is not even JSON here)."""
    from cnnbp.serve.protocol import JSON_OVERHEAD
    limit = 2 * 4 * 64 + JSON_OVERHEAD
    parse_infer(body([0.0] * 8, [2, 4]) + b" " * (limit - len(body([0.0] * 8, [2, 4]))), None,
                fp32(4), max_rows=2)
    with pytest.raises(BadRequest) as info:
        parse_infer(b"[" * (limit + 1), None, fp32(4), max_rows=2)
    assert info.value.status == 413 and f"at most {limit:,}" in str(info.value)
