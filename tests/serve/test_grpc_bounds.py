"""gRPC's bounds: malformed protobuf is a plain INVALID_ARGUMENT (no traceback), open streams
are capped at half of --max-connections and an idle stream is ended, so streams never take
every RPC slot; and no model may be named `stats` (Triton's statistics route)."""
import shutil
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from tests.conftest import ROOT
from tests.serve.conftest import Server

INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
LIVE = "/inference.GRPCInferenceService/ServerLive"
IDLE = 2.0  # seconds a stream may wait with nothing in flight


@pytest.fixture(scope="module")
def capped(repo):
    s = Server(repo / "bundles", max_connections=4, stream_idle=IDLE)
    yield s
    s.stop()


def good() -> bytes:
    request = pb.ModelInferRequest(model_name="digits", id="g")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(np.zeros((1, 8, 8, 1), "float32").tobytes())
    return request.SerializeToString()


def test_malformed_protobuf_is_invalid_argument_without_a_traceback(capped):
    with grpc.insecure_channel(capped.grpc_target) as channel:
        infer = channel.unary_unary(INFER, response_deserializer=pb.ModelInferResponse.FromString)
        # a truncated varint, a field past the end, an input past its end; bad UTF-8 in
        # model_name passes the wire walk and fails the parse
        for junk in (b"\xff\xff\xff", b"\x0a\x50abc", b"\x2a\x03\x0a\x09x", b"\x0a\x02\xff\xfe"):
            with pytest.raises(grpc.RpcError) as info:
                infer(junk, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, junk
            assert "not a valid" in info.value.details() and "Decode" not in \
                info.value.details(), info.value.details()
        stream = channel.stream_stream(
            STREAM, response_deserializer=pb.ModelStreamInferResponse.FromString)
        answers = list(stream(iter([good(), b"\xff\xff\xff", good()]), timeout=30))
    assert [a.error_message[:30] for a in answers] == \
        ["", "the request is not a valid pro", ""]
    assert [a.infer_response.id for a in answers] == ["g", "", "g"]
    assert "Traceback" not in capped.log() and "DecodeError" not in capped.log()


def test_streams_are_capped_and_an_idle_one_is_ended(capped):
    """--max-connections 4: two streams may be open; a third is refused at once, ServerLive
    still answers, and each idle stream ends with UNAVAILABLE after IDLE seconds."""
    hold = threading.Event()

    def requests():
        yield good()
        hold.wait(30)  # then idle: the server ends the stream first

    with grpc.insecure_channel(capped.grpc_target) as channel:
        stream = channel.stream_stream(
            STREAM, response_deserializer=pb.ModelStreamInferResponse.FromString)
        calls = [stream(requests(), timeout=30) for _ in range(2)]
        for call in calls:  # each answered its first request: both are open
            assert next(call).infer_response.id == "g"
        third = stream(requests(), timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            next(third)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 streams are open" in info.value.details() and \
            "--max-connections 4" in info.value.details()
        live = channel.unary_unary(LIVE, response_deserializer=pb.ServerLiveResponse.FromString)
        assert live(pb.ServerLiveRequest().SerializeToString(), timeout=10).live
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == (f"the stream sent no request for {IDLE:g} s, and "
                                            "has none in flight: it is closed (open a new one)")
        hold.set()
        # the slots are free again: a new stream is served
        assert [a.infer_response.id for a in stream(iter([good()]), timeout=30)] == ["g"]


def test_a_model_named_stats_is_refused(repo, tmp_path):
    shutil.copytree(repo / "bundles" / "digits", tmp_path / "stats")
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve", str(tmp_path),
                           "--port", "0", "--grpc-port", "0"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "a model named 'stats' cannot be served: GET /v2/models/stats is the statistics " \
        "of every model" in done.stderr
    assert "Traceback" not in done.stderr
