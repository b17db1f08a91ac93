"""The request codec on its own: flat and nested JSON data, strict types, binary equals JSON."""
import json

import numpy as np
import pytest

from cnnbp.serve.protocol import BadRequest, parse_infer


def body(data, shape):
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": shape,
                                   "data": data}]}).encode()


@pytest.mark.parametrize("nested", [False, True])
def test_flat_and_nested_json_data(nested):
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 1)).astype("float32")
    data = x.tolist() if nested else x.reshape(-1).tolist()
    got = parse_infer(body(data, [2, 3, 3, 1]), None, "input", (3, 3, 1)).tensor
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("bad", ["[1, , 2]", "[1, 2,]", "[, 1]", '["1", 2]'])
def test_data_that_is_not_a_list_of_numbers_is_refused(bad):
    text = ('{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": '
            + bad + "}]}").encode()
    with pytest.raises(BadRequest):
        parse_infer(text, None, "input", (2,))


def test_binary_and_json_give_the_same_tensor():
    x = np.arange(8, dtype="float32").reshape(2, 4)
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4],
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    a = parse_infer(head + raw, str(len(head)), "input", (4,)).tensor
    b = parse_infer(body(x.tolist(), [2, 4]), None, "input", (4,)).tensor
    np.testing.assert_array_equal(a, b)
