"""The Open Inference Protocol over gRPC: KServe V2 ``inference.GRPCInferenceService``.

The messages and the service stub are the published ones that ``tritonclient.grpc`` ships
(compiled from Triton's ``grpc_service.proto``, a superset of KServe's ``grpc_predict_v2.proto``),
so a stock Triton or KServe client talks to it unchanged. It runs on the HTTP server's event
loop and shares its models, batchers, token and metrics (``App``). Methods outside the V2 core
(shared memory, repository control, statistics) answer UNIMPLEMENTED; Triton's ModelConfig is
there because its ``parameters`` carry the class names and the preprocessing, which a client
needs to turn an image into the input tensor (``cnnbp predict --url grpc://``).
"""
from __future__ import annotations

import functools
import logging
import math
import time

import grpc
import numpy as np
import orjson
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from .protocol import (BadRequest, TensorSpec, bytes_tensor, check_class_count,
                       check_input_count, check_output_count, check_output_name,
                       decode_tensor, the_input)

log = logging.getLogger("cnnbp.serve")
access = logging.getLogger("cnnbp.serve.access")
# the server's one map from its error statuses to gRPC codes
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
         404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
         415: grpc.StatusCode.INVALID_ARGUMENT, 422: grpc.StatusCode.INVALID_ARGUMENT,
         503: grpc.StatusCode.UNAVAILABLE}
OUTPUT = "probabilities"
# the typed contents field of each input datatype, as Triton's grpc_service.proto has them
CONTENTS = {"FP32": "fp32_contents", "UINT8": "uint_contents"}
TYPES = {"FP32": mc.TYPE_FP32, "UINT8": mc.TYPE_UINT8}


def _rpc(route: str, auth: bool = True):
    """Wrap a handler: token check, BadRequest → status with message, metrics, access log."""
    def wrap(fn):
        @functools.wraps(fn)
        async def handler(self, request, context):
            started = time.perf_counter()
            code, message, reply = grpc.StatusCode.OK, "", None
            try:
                if auth and self.app.expected_auth is not None \
                        and not self.app.authorized(_authorization(context)):
                    raise BadRequest("missing or wrong bearer token (metadata "
                                     "authorization: Bearer <token>)", 401)
                reply = await fn(self, request, context)
            except BadRequest as exc:
                code, message = CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
            except Exception:  # a bug: the traceback goes to the log, never to the client
                log.exception("internal error in gRPC %s", fn.__name__)
                code, message = grpc.StatusCode.INTERNAL, "internal error"
            seconds = time.perf_counter() - started
            self.app.metrics.request(route, code.name, seconds, "grpc")
            if access.isEnabledFor(logging.INFO):
                access.info('%s "gRPC %s" %s %.2fms', context.peer(), fn.__name__, code.name,
                            seconds * 1000)
            if code is not grpc.StatusCode.OK:
                await context.abort(code, message)
            return reply
        return handler
    return wrap


def _authorization(context) -> bytes | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return None


class Service(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, app):
        self.app = app

    @_rpc("health", auth=False)
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    @_rpc("health", auth=False)
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self.app.models))

    @_rpc("server")
    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**self.app.server_metadata())

    @_rpc("metadata")
    async def ModelReady(self, request, context):
        self.app.model(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    @_rpc("metadata")
    async def ModelMetadata(self, request, context):
        meta = self.app.model(request.name, request.version).metadata()
        tensors = [[pb.ModelMetadataResponse.TensorMetadata(
            name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta[key]]
            for key in ("inputs", "outputs")]
        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"],
                                        platform=meta["platform"], inputs=tensors[0],
                                        outputs=tensors[1])

    @_rpc("metadata")
    async def ModelConfig(self, request, context):
        model = self.app.model(request.name, request.version)
        return pb.ModelConfigResponse(config=mc.ModelConfig(
            name=model.name, platform="onnxruntime_onnx", max_batch_size=self.app.max_batch_rows,
            input=[mc.ModelInput(name=s.name, data_type=TYPES[s.datatype], dims=s.shape)
                   for s in model.inputs],
            output=[mc.ModelOutput(name=OUTPUT, data_type=mc.TYPE_FP32,
                                   dims=[len(model.labels)])],
            parameters={
                "class_names": mc.ModelParameter(string_value=orjson.dumps(model.labels).decode()),
                "preprocess": mc.ModelParameter(
                    string_value=orjson.dumps(model.prep.to_json()).decode())}))

    @_rpc("infer")
    async def ModelInfer(self, request, context):
        model = self.app.model(request.model_name, request.model_version)
        class_count = _class_count(request, len(model.labels))
        # counted before _payload walks them: a message of millions of empty inputs is cheap
        check_input_count(max(len(request.inputs), len(request.raw_input_contents)),
                          model.inputs)

        def decode() -> np.ndarray:
            name, x = _input(request, model.inputs, self.app.max_batch_rows)
            return model.model_input(name, x)
        x = await self.app.offload(decode, _payload(request))
        probs = await self.app.predict(model, x, class_count)
        reply = pb.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
        # outputs always go as raw contents, as Triton answers
        if class_count:
            reply.outputs.add(name=OUTPUT, datatype="BYTES", shape=probs.shape)
            reply.raw_output_contents.append(bytes_tensor(probs))
        else:
            reply.outputs.add(name=OUTPUT, datatype="FP32", shape=probs.shape)
            reply.raw_output_contents.append(np.ascontiguousarray(probs, "<f4").tobytes())
        return reply


def _payload(request) -> int:
    """The bytes of tensor data in ``request``, found without reading the values."""
    typed = sum(4 * len(value) for t in request.inputs for _, value in t.contents.ListFields())
    return typed + sum(len(r) for r in request.raw_input_contents)


def _input(request, accepted: tuple[TensorSpec, ...], max_rows: int) -> tuple[str, np.ndarray]:
    """The one input sent (its name and tensor) from raw_input_contents or typed contents.

    Every length is checked before a value is read, so the work is bounded by the row cap.
    """
    if not request.inputs:
        raise BadRequest("the request has no inputs; this model takes one, "
                         + " or ".join(s.describe() for s in accepted))
    _, want = the_input([{"name": t.name} for t in request.inputs], accepted)
    index = [t.name for t in request.inputs].index(want.name)
    spec = request.inputs[index]
    raws = request.raw_input_contents
    if raws and len(raws) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raws)} entries for {len(request.inputs)} "
                         "inputs; send one per input, in order")
    typed = spec.HasField("contents")
    if raws and typed:
        raise BadRequest(f"input {want.name!r} has both contents and raw_input_contents; send one")
    field = CONTENTS[want.datatype]
    kinds = [f.name for f, _ in spec.contents.ListFields()] if typed else []
    if kinds and kinds != [field] and spec.datatype == want.datatype:
        raise BadRequest(f"input {want.name!r}: {want.datatype} values go in contents.{field}, "
                         f"not {', '.join('contents.' + k for k in kinds)}")
    data = getattr(spec.contents, field) if kinds == [field] else None
    return want.name, decode_tensor(
        {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape), "data": data},
        memoryview(raws[index]) if raws else None, want, max_rows,
        raw_name="raw_input_contents", data_name=f"contents.{field}")


def _class_count(request, classes: int) -> int:
    """Triton's classification extension: ``parameters["classification"]`` on the output."""
    count = 0
    check_output_count(len(request.outputs), OUTPUT)
    for i, out in enumerate(request.outputs):
        check_output_name(out.name, OUTPUT, f"outputs[{i}].name")
        if "classification" in out.parameters:
            param = out.parameters["classification"]
            kind = param.WhichOneof("parameter_choice")
            where = f"outputs[{i}].parameters.classification"
            if kind not in ("int64_param", "uint64_param"):
                raise BadRequest(f"{where} must be an int64_param (the number of top classes), "
                                 f"got {kind or 'nothing'}")
            count = check_class_count(getattr(param, kind), where, classes)
    return count


def max_message(app) -> int:
    """The largest message a served model can need: ``--max-batch-rows`` rows of its biggest
    input at 8 bytes a value (FP32 and UINT8 take 1 to 5, raw or typed) and 64 KiB for the
    rest, at most ``--max-body``. A bigger one is RESOURCE_EXHAUSTED before it is parsed: the
    message is parsed on the event loop, and 16 MB of tiny entries take a third of a second."""
    values = max(math.prod(m.input_shape) for m in app.models.values())
    return min(app.max_body, app.max_batch_rows * values * 8 + (64 << 10))


async def start(app, where: str) -> grpc.aio.Server:
    """Listen on ``where`` (host:port) and serve until ``await server.stop(grace)``."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message(app)),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ], maximum_concurrent_rpcs=app.max_concurrent_rpcs)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Service(app), server)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError:
        bound = 0
    if not bound:
        raise BadRequest(f"--grpc-port: cannot listen on {where} (in use, or the host is not "
                         "this machine's)")
    await server.start()
    log.info("listening on grpc://%s (Open Inference Protocol, GRPCInferenceService)",
             where.rsplit(":", 1)[0] + f":{bound}")
    return server
