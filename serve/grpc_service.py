"""The Open Inference Protocol over gRPC: KServe V2 ``inference.GRPCInferenceService``.

The messages and the service stub are the published ones that ``tritonclient.grpc`` ships
(compiled from Triton's ``grpc_service.proto``, a superset of KServe's ``grpc_predict_v2.proto``),
so a stock Triton or KServe client talks to it unchanged. It runs on the HTTP server's event
loop and shares its models, batchers, token, metrics and statistics (``App``). Beyond the V2
core it has Triton's ModelConfig (its ``parameters`` carry the class names and the
preprocessing, which ``cnnbp predict --url grpc://`` needs), ModelStatistics, RepositoryIndex and
ModelStreamInfer; shared memory, repository control, tracing and log settings answer
UNIMPLEMENTED with what to do instead.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import math
import time

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from .protocol import (
    OUTPUT,
    BadRequest,
    TensorSpec,
    bytes_tensor,
    check_class_count,
    check_input_count,
    check_output_count,
    check_output_name,
    decode_tensor,
    model_config,
    the_input,
)
from .wire import check_request

log = logging.getLogger("cnnbp.serve")
access = logging.getLogger("cnnbp.serve.access")
# the server's one map from its error statuses to gRPC codes
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
         404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
         415: grpc.StatusCode.INVALID_ARGUMENT, 422: grpc.StatusCode.INVALID_ARGUMENT,
         501: grpc.StatusCode.UNIMPLEMENTED, 503: grpc.StatusCode.UNAVAILABLE}
# the typed contents field of each input datatype, as Triton's grpc_service.proto has them
CONTENTS = {"FP32": "fp32_contents", "UINT8": "uint_contents"}
# requests of one stream in flight at once: they batch with each other; a client that sends
# faster than they are answered is held back by gRPC's flow control
STREAM_WINDOW = 16
# ModelInfer and ModelStreamInfer take their messages as bytes: wire.check_request bounds
# them before they are parsed (off the event loop when large)
RAW_REQUESTS = ("ModelInfer", "ModelStreamInfer")
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Triton's methods this server leaves out, and what to do instead
NOT_SERVED = {
    "RepositoryModelLoad": "repository control: the models are fixed when the server starts",
    "RepositoryModelUnload": "repository control: the models are fixed when the server starts",
    "SystemSharedMemoryStatus": "shared memory: send the tensors in the request",
    "SystemSharedMemoryRegister": "shared memory: send the tensors in the request",
    "SystemSharedMemoryUnregister": "shared memory: send the tensors in the request",
    "CudaSharedMemoryStatus": "shared memory: send the tensors in the request",
    "CudaSharedMemoryRegister": "shared memory: send the tensors in the request",
    "CudaSharedMemoryUnregister": "shared memory: send the tensors in the request",
    "TraceSetting": "tracing: the access log and /metrics time every request",
    "LogSettings": "log settings: logging is set when the server starts (--no-access-log)"}


def _rpc(route: str, auth: bool = True):
    """Wrap a unary handler: ``Service.answer`` it, and end the call with any error status."""
    def wrap(fn):
        @functools.wraps(fn)
        async def handler(self, request, context):
            code, message, reply = await self.answer(
                route, fn.__name__, context, lambda: fn(self, request, context), auth)
            if code is not grpc.StatusCode.OK:
                await context.abort(code, message)
            return reply
        return handler
    return wrap


def _not_served(method: str, why: str):
    @_rpc("other")
    async def handler(self, request, context):
        raise BadRequest(f"{method} is not served: cnnbp serve has no {why}", 501)
    handler.__name__ = method
    return handler


def _authorization(context) -> bytes | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return None


class Service(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Triton's GRPCInferenceService over the ``App``'s models, batchers and metrics."""

    def __init__(self, app):
        self.app = app
        # open ModelStreamInfer calls: each holds one of --max-connections' RPC slots while
        # it lasts, so at most half of them may be streams; the rest answer unary calls
        self.streams, self.max_streams = 0, max(1, app.config.max_connections // 2)

    async def answer(self, route: str, method: str, context, call, auth: bool = True):
        """``await call()`` → (status code, message, reply): the token checked, BadRequest
        turned into its status, counted in the metrics and written to the access log."""
        started = time.perf_counter()
        code, message, reply = grpc.StatusCode.OK, "", None
        try:
            if auth and self.app.auth.required \
                    and not self.app.authorized(_authorization(context)):
                raise BadRequest("missing or wrong bearer token (metadata "
                                 "authorization: Bearer <token>)", 401)
            reply = await call()
        except BadRequest as exc:
            code, message = CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
        except Exception:  # a bug: the traceback goes to the log, never to the client
            log.exception("internal error in gRPC %s", method)
            code, message = grpc.StatusCode.INTERNAL, "internal error"
        seconds = time.perf_counter() - started
        self.app.metrics.request(route, code.name, seconds, "grpc")
        if access.isEnabledFor(logging.INFO):
            access.info('%s "gRPC %s" %s %.2fms', context.peer(), method, code.name,
                        seconds * 1000)
        return code, message, reply

    @_rpc("health", auth=False)
    async def ServerLive(self, request, context):
        """Always live while the process answers (no token needed, as HTTP's probe)."""
        return pb.ServerLiveResponse(live=True)

    @_rpc("health", auth=False)
    async def ServerReady(self, request, context):
        """Ready once models are loaded (no token needed, as HTTP's probe)."""
        return pb.ServerReadyResponse(ready=bool(self.app.models))

    @_rpc("server")
    async def ServerMetadata(self, request, context):
        """The server's name, version and extensions, as GET /v2."""
        return pb.ServerMetadataResponse(**self.app.server_metadata())

    @_rpc("metadata")
    async def ModelReady(self, request, context):
        """Ready when the model is served (NOT_FOUND otherwise)."""
        self.app.model(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    @_rpc("metadata")
    async def ModelMetadata(self, request, context):
        """The model's inputs and output, as GET /v2/models/NAME."""
        meta = self.app.model(request.name, request.version).metadata()
        tensors = [[pb.ModelMetadataResponse.TensorMetadata(
            name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta[key]]
            for key in ("inputs", "outputs")]
        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"],
                                        platform=meta["platform"], inputs=tensors[0],
                                        outputs=tensors[1])

    @_rpc("config")
    async def ModelConfig(self, request, context):
        """Triton's model configuration, parsed from the HTTP JSON document."""
        model = self.app.model(request.name, request.version)
        return pb.ModelConfigResponse(config=json_format.ParseDict(
            model_config(model, self.app.config.rows_per_request), mc.ModelConfig()))

    @_rpc("stats")
    async def ModelStatistics(self, request, context):
        """One model's statistics, or every model's when the request names none."""
        names = [self.app.model(request.name, request.version).name] if request.name \
            else sorted(self.app.stats)
        return pb.ModelStatisticsResponse(model_stats=[json_format.ParseDict(
            self.app.stats[n].to_json(), pb.ModelStatistics()) for n in names])

    @_rpc("index")
    async def RepositoryIndex(self, request, context):
        """Every served model, READY."""
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(
            name=n, version="1", state="READY") for n in sorted(self.app.models)])

    @_rpc("infer")
    async def ModelInfer(self, request, context):
        """One inference: the request parsed (bounded, off the loop when large), then batched."""
        return await self._infer(await self._parse(request))

    async def _parse(self, data: bytes) -> pb.ModelInferRequest:
        """A ModelInferRequest from its bytes: bounded by wire.check_request first, then
        parsed (off the event loop when large); malformed bytes are a plain 400."""
        check_request(data)

        def parse() -> pb.ModelInferRequest:
            try:
                return pb.ModelInferRequest.FromString(data)
            except DecodeError:
                raise BadRequest("the message is not a valid ModelInferRequest (protobuf "
                                 "that does not parse)") from None
        return await self.app.offload(parse, len(data))

    async def ModelStreamInfer(self, request_iterator, context):
        """One response per request, in order; a bad request gets its own ``error_message``
        and the stream goes on. Up to ``STREAM_WINDOW`` requests run at once, each through
        the model's batcher like any other request. On shutdown the stream reads no more
        requests, answers those it has, and ends: an idle stream does not hold the server."""
        code, message, _ = await self.answer("stream", "ModelStreamInfer (open)", context,
                                             self._open_stream)
        if code is not grpc.StatusCode.OK:
            await context.abort(code, message)
        try:
            async for response in self._stream(request_iterator, context):
                yield response
        finally:
            self.streams -= 1

    async def _open_stream(self) -> None:
        if self.streams >= self.max_streams:
            raise BadRequest(f"{self.streams} streams are open, the most this server keeps "
                             f"(half of --max-connections {self.app.config.max_connections}): "
                             "close one, or send requests with ModelInfer", 413)
        self.streams += 1

    async def _stream(self, request_iterator, context):
        idle = self.app.config.stream_idle
        pending: asyncio.Queue = asyncio.Queue()  # answers to come, in order; None: no more
        window = asyncio.Semaphore(STREAM_WINDOW)
        busy = [0]  # requests read and not yet answered

        async def read() -> None:
            requests, following = aiter(request_iterator), None
            try:
                while True:
                    following = following or asyncio.ensure_future(anext(requests))
                    # a stream with no request in flight for `idle` seconds is ended: an idle
                    # one would hold an RPC slot for ever
                    if not (await asyncio.wait([following], timeout=idle))[0]:
                        if busy[0]:
                            continue
                        raise BadRequest(f"the stream sent no request for {idle:g} s, and has "
                                         "none in flight: it is closed (open a new one)", 503)
                    arrived, following = following, None
                    try:
                        request = arrived.result()
                    except StopAsyncIteration:
                        break
                    busy[0] += 1
                    try:
                        await window.acquire()
                    finally:  # even when shutdown cancels the wait: a request read is answered
                        pending.put_nowait(asyncio.ensure_future(
                            self._stream_one(request, context)))
            finally:
                if following is not None:
                    following.cancel()
                pending.put_nowait(None)
        reader = asyncio.ensure_future(read())
        stopping = asyncio.ensure_future(self.app.stopping.wait())
        stopping.add_done_callback(lambda _: reader.cancel())
        try:
            while (task := await pending.get()) is not None:
                yield await task
                window.release()
                busy[0] -= 1
            await asyncio.wait([reader])
            if not reader.cancelled() and isinstance(reader.exception(), BadRequest):
                exc = reader.exception()
                await context.abort(CODES[exc.status], str(exc))
            if not reader.cancelled():
                reader.result()  # a broken stream's error ends the call
        finally:  # the client went away, or the stream ended: nothing more to answer
            stopping.cancel()
            reader.cancel()
            while not pending.empty():
                task = pending.get_nowait()
                if task is not None:
                    task.cancel()

    async def _stream_one(self, data: bytes, context) -> pb.ModelStreamInferResponse:
        parsed = []

        async def call() -> pb.ModelInferResponse:
            parsed.append(await self._parse(data))
            return await self._infer(parsed[0])
        code, message, reply = await self.answer("infer", "ModelStreamInfer", context, call,
                                                 auth=False)
        if code is grpc.StatusCode.OK:
            return pb.ModelStreamInferResponse(infer_response=reply)
        request = parsed[0] if parsed else pb.ModelInferRequest()
        # the request's id comes back with its error, so a client can tell which one failed
        return pb.ModelStreamInferResponse(error_message=message, infer_response=(
            pb.ModelInferResponse(model_name=request.model_name,
                                  model_version=request.model_version, id=request.id)))

    async def _infer(self, request) -> pb.ModelInferResponse:
        """One ModelInferRequest answered, counted in the model's statistics."""
        model = self.app.model(request.model_name, request.model_version)
        with self.app.stats[model.name].request() as timer:
            class_count = _class_count(request, len(model.labels))
            # counted before _payload walks them: a message of millions of empty inputs is cheap
            check_input_count(max(len(request.inputs), len(request.raw_input_contents)),
                              model.inputs)

            def decode() -> np.ndarray:
                name, x = _input(request, model.inputs, self.app.config.rows_per_request)
                return model.model_input(name, x)
            x = await self.app.offload(decode, _payload(request))
            timer.decoded()
            probs = await self.app.predict(model, x, class_count, timer)
            reply = pb.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
            # outputs always go as raw contents, as Triton answers
            if class_count:
                reply.outputs.add(name=OUTPUT, datatype="BYTES", shape=probs.shape)
                reply.raw_output_contents.append(bytes_tensor(probs))
            else:
                reply.outputs.add(name=OUTPUT, datatype="FP32", shape=probs.shape)
                reply.raw_output_contents.append(np.ascontiguousarray(probs, "<f4").tobytes())
            return reply


for _method, _why in NOT_SERVED.items():
    setattr(Service, _method, _not_served(_method, _why))


def handlers(service: Service) -> grpc.GenericRpcHandler:
    """The service's method handlers, as service_pb2_grpc registers them, except that
    ``RAW_REQUESTS`` get their request as bytes (``Service._parse`` reads them)."""
    methods = {}
    for method in SERVICE.methods:
        request = getattr(pb, method.input_type.name).FromString
        kind = grpc.stream_stream_rpc_method_handler if method.client_streaming \
            else grpc.unary_unary_rpc_method_handler
        methods[method.name] = kind(
            getattr(service, method.name),
            request_deserializer=None if method.name in RAW_REQUESTS else request,
            response_serializer=getattr(pb, method.output_type.name).SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE.full_name, methods)


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
    rest, at most ``--max-body``. A bigger one is RESOURCE_EXHAUSTED before it is read; a
    smaller one's parse is bounded by wire.check_request."""
    values = max(math.prod(m.input_shape) for m in app.models.values())
    return min(app.config.max_body, app.config.rows_per_request * values * 8 + (64 << 10))


async def start(app, where: str) -> grpc.aio.Server:
    """Listen on ``where`` (host:port) and serve until ``await server.stop(grace)``."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message(app)),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ], maximum_concurrent_rpcs=app.config.max_connections)
    server.add_generic_rpc_handlers((handlers(Service(app)),))
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
