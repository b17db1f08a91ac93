"""Nothing is accepted silently: trailing bytes after binary tensors, a top_k or class_count
outside 1..classes each get a 400 (gRPC INVALID_ARGUMENT) naming the field and its range."""
import json

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from tests.serve.conftest import post
from tests.serve.test_abuse import error_of, png_bytes

X = np.random.default_rng(3).normal(size=(1, 8, 8, 1)).astype("float32")


def binary(extra: bytes = b"", declare: bool = True):
    raw = X.tobytes()
    spec = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1]}
    if declare:
        spec["parameters"] = {"binary_data_size": len(raw)}
    else:
        spec["data"] = X.reshape(-1).tolist()
    head = json.dumps({"inputs": [spec]}).encode()
    body = head + (raw if declare else b"") + extra
    return body, {"Inference-Header-Content-Length": str(len(head))}


def test_trailing_bytes_after_binary_data_are_400(server):
    url = f"{server.url}/v2/models/digits/infer"
    assert post(url, *binary())[0] == 200
    status, _, body = post(url, *binary(b"\0" * 10))
    assert status == 400
    assert "has 266 bytes after its JSON part" in error_of(body)
    assert "declare 256 (binary_data_size): 10 trailing bytes" in error_of(body)
    status, _, body = post(url, *binary(b"junk", declare=False))
    assert status == 400 and "declare 0 (binary_data_size): 4 trailing bytes" in error_of(body)


@pytest.mark.parametrize("top_k,shown", [("-5", "-5"), ("0", "0"), ("1.5", "1.5"), ("x", "x"),
                                         ("%C2%B2", "\u00b2")])  # a superscript 2: no digit
def test_top_k_outside_its_range_is_400(server, top_k, shown):
    status, _, body = post(f"{server.url}/v2/models/digits/classify?top_k={top_k}",
                           png_bytes(np.zeros((8, 8), "uint8")), {"content-type": "image/png"})
    assert status == 400
    assert error_of(body) == (f"top_k must be a whole number from 1 to 10 (the model's classes; "
                              f"a larger one returns all 10), got {shown!r}")


def test_top_k_above_the_classes_returns_them_all(server):
    status, _, body = post(f"{server.url}/v2/models/digits/classify?top_k=99",
                           png_bytes(np.zeros((8, 8), "uint8")), {"content-type": "image/png"})
    assert status == 200 and len(json.loads(body)["top_k"]) == 10


@pytest.mark.parametrize("count", [-5, 11, 10 ** 12])
def test_grpc_class_count_outside_its_range_is_invalid_argument(server, count):
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(X.tobytes())
    request.outputs.add(name="probabilities").parameters["classification"].int64_param = count
    with grpc.insecure_channel(server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "outputs[0].parameters.classification must be a whole number from 0 to 10 (0 = scores, "
        f"k = the top k classes), got {count}")


def test_thousands_of_inputs_or_outputs_are_refused_by_their_count(server):
    """Over gRPC a 16 MB message may hold millions of small entries; the wire format is
    walked up to the ninth entry, before the message is parsed (over HTTP the JSON bound
    refuses such a body first)."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for field in ("inputs", "outputs"):
            message = (f"the request has more than 8 {field} entries; this server's models "
                       "take one input and give one output")
            request = pb.ModelInferRequest(model_name="digits")
            request.inputs.add(name="input", datatype="FP32", shape=[1, 8, 8, 1])
            request.raw_input_contents.append(X.tobytes())
            for _ in range(3_000 - (field == "inputs")):
                getattr(request, field).add(name="probabilities")
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == message
