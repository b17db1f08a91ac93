"""Raw tensors on /infer: the stock tritonclient (HTTP JSON, HTTP binary, gRPC) sends the
``pixels`` input that a bundle's pixels.onnx and the Triton repository take (the source's raw
values: UINT8 digits levels 0..16 here, raw FP32 values for signals) to a real `cnnbp serve`,
and gets what the normalised FP32 ``input`` gets for the same rows normalised here by hand."""
import json
import shutil

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from tests.serve.conftest import Server, post

RNG = np.random.default_rng(5)
# preprocessing written into the served models' metadata, away from identity on purpose
PREP = {"digits": {"domain": "image", "raw_max": 16.0, "scale": 8.0, "mean": [0.6], "std": [0.5]},
        "mnist1d": {"domain": "signal", "raw_max": None, "scale": 3.0, "mean": [0.5],
                    "std": [2.0]}}
SHAPE = {"digits": (8, 8, 1), "mnist1d": (40, 1)}


def by_hand(model: str, raw: np.ndarray) -> np.ndarray:
    """The README's formula on raw values: (raw / scale - mean) / std."""
    p = PREP[model]
    return ((raw.astype("float64") / p["scale"] - p["mean"][0]) / p["std"][0]).astype("float32")


@pytest.fixture(scope="module")
def skewed(repo, tmp_path_factory):
    """The fixture's bundles with PREP in their model metadata, served."""
    import onnx
    base = tmp_path_factory.mktemp("skewed")
    for name, fields in PREP.items():
        shutil.copytree(repo / "bundles" / name, base / name)
        model = onnx.load(str(base / name / "model.onnx"))
        (prop,) = [p for p in model.metadata_props if p.key == "preprocess"]
        prop.value = json.dumps({**json.loads(prop.value), **fields})
        onnx.save(model, str(base / name / "model.onnx"))
    s = Server(base)
    yield s
    s.stop()


def rows(model: str, n: int = 5) -> np.ndarray:
    if model == "digits":  # gray levels 0..16, raw_max 16: not 8-bit pixels
        return RNG.integers(0, 17, size=(n, *SHAPE[model])).astype("uint8")
    return RNG.normal(1.0, 4.0, size=(n, *SHAPE[model])).astype("float32")


def kind(raw: np.ndarray) -> str:
    return "UINT8" if raw.dtype == np.uint8 else "FP32"


def http_infer(server, model, name, x, binary):
    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    inp = httpclient.InferInput(name, list(x.shape), kind(x))
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    try:
        return client.infer(model, [inp], outputs=[out]).as_numpy("probabilities")
    finally:
        client.close()


def grpc_infer(server, model, name, x):
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(server.grpc_target)
    inp = grpcclient.InferInput(name, list(x.shape), kind(x))
    inp.set_data_from_numpy(x)
    try:
        return client.infer(model, [inp]).as_numpy("probabilities")
    finally:
        client.close()


@pytest.mark.parametrize("model", ["digits", "mnist1d"])
def test_stock_clients_send_raw_pixels(skewed, model):
    raw = rows(model)
    expected = http_infer(skewed, model, "input", by_hand(model, raw), binary=True)
    assert expected.shape == (5, 10)
    answers = {"http binary": http_infer(skewed, model, "pixels", raw, binary=True),
               "http json": http_infer(skewed, model, "pixels", raw, binary=False),
               "grpc raw": grpc_infer(skewed, model, "pixels", raw)}
    for how, got in answers.items():
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=how)
        assert (got.argmax(1) == expected.argmax(1)).all(), how
    # the model tells the preprocessing apart: identity's (raw / 255 for images) answers otherwise
    plain = raw.astype("float32") / (255 if model == "digits" else 1)
    assert np.abs(http_infer(skewed, model, "input", plain, binary=True) - expected).max() > 1e-3


def test_grpc_typed_uint_contents(skewed):
    raw = rows("digits", 2)
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype="UINT8", shape=raw.shape,
                       contents=pb.InferTensorContents(uint_contents=raw.reshape(-1).tolist()))
    with grpc.insecure_channel(skewed.grpc_target) as channel:
        reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    got = np.frombuffer(reply.raw_output_contents[0], "<f4").reshape(2, 10)
    expected = http_infer(skewed, "digits", "input", by_hand("digits", raw), binary=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_metadata_and_config_advertise_pixels(skewed):
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import model_config_pb2 as mc
    status, _, body = post(f"{skewed.url}/v2/models/digits", None, method="GET")
    assert status == 200
    assert {"name": "pixels", "datatype": "UINT8", "shape": [-1, 8, 8, 1]} in \
        json.loads(body)["inputs"]
    client = grpcclient.InferenceServerClient(skewed.grpc_target)
    config = client.get_model_config("mnist1d").config
    client.close()
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == \
        [("input", mc.TYPE_FP32, [40, 1]), ("pixels", mc.TYPE_FP32, [40, 1])]


def json_pixels(shape, datatype="UINT8", data=None, **extra):
    data = [0] * int(np.prod(shape)) if data is None else data
    return json.dumps({"inputs": [{"name": "pixels", "datatype": datatype, "shape": shape,
                                   "data": data}], **extra}).encode()


BAD_HTTP = [
    (json_pixels([1, 8, 8, 1], "FP32"), "input 'pixels' must have datatype UINT8 (shape "
     "[batch, 8, 8, 1]), got 'FP32'"),
    (json_pixels([1, 8, 8, 3]), "has shape [1, 8, 8, 3]; this model takes [batch, 8, 8, 1] of "
     "UINT8"),
    (json_pixels([1, 8, 8, 1], data=[256] + [0] * 63), "whole numbers from 0 to 255, got values "
     "from 0 to 256"),
    (json_pixels([1, 8, 8, 1], data=[0.5] * 64), "whole numbers from 0 to 255"),
    (json.dumps({"inputs": json.loads(json_pixels([1, 8, 8, 1]))["inputs"] + [
        {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [0.0] * 64}]}
     ).encode(), "inputs ['pixels', 'input']: send one of them"),
]


@pytest.mark.parametrize("body,message", BAD_HTTP, ids=[m[:30] for _, m in BAD_HTTP])
def test_wrong_pixels_are_400_naming_dtype_and_shape(server, body, message):
    status, _, resp = post(f"{server.url}/v2/models/digits/infer", body)
    assert status == 400 and message in json.loads(resp)["error"], resp


@pytest.mark.parametrize("datatype,shape,raw,message", [
    ("FP32", [1, 8, 8, 1], b"\0" * 256, "must have datatype UINT8 (shape [batch, 8, 8, 1])"),
    ("UINT8", [1, 8, 8], b"\0" * 64, "this model takes [batch, 8, 8, 1] of UINT8"),
    ("UINT8", [1, 8, 8, 1], b"\0" * 256, "holds 256 bytes, but shape [1, 8, 8, 1] of UINT8 "
     "needs 64"),
])
def test_wrong_pixels_over_grpc_are_invalid_argument(server, datatype, shape, raw, message):
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    with grpc.insecure_channel(server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details(), info.value.details()
