"""A gRPC load generator in its own process: ModelInfer at a fixed concurrency for a duration.

grpc.aio on one channel (HTTP/2 multiplexes the calls), ``C`` coroutines each sending the next
request as soon as its answer arrives (closed loop, like wrk). Prints one JSON line:
{"rps", "p50_ms", "p99_ms", "errors", "requests"}.
Usage: python bench/grpc_load.py HOST:PORT MODEL H,W,C CONCURRENCY SECONDS
"""
import asyncio
import json
import sys
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc


async def main(target: str, model: str, shape: list[int], concurrency: int, seconds: float):
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype("<f4")
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.tobytes())
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(50):  # warm-up: connection, HTTP/2 windows, server caches
            await stub.ModelInfer(request)
        latencies, errors = [], 0
        end = time.perf_counter() + seconds

        async def worker():
            nonlocal errors
            while (t := time.perf_counter()) < end:
                try:
                    await stub.ModelInfer(request, timeout=30)
                    latencies.append(time.perf_counter() - t)
                except grpc.RpcError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    print(json.dumps({"rps": len(ms) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
                      "p99_ms": float(np.percentile(ms, 99)), "errors": errors,
                      "requests": len(ms)}))


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    target, model, shape, conc, secs = sys.argv[1:6]
    asyncio.run(main(target, model, [int(d) for d in shape.split(",")], int(conc), float(secs)))
