"""How long one JSON or typed-protobuf tensor parse holds the GIL, by size: the figures behind
serve's MAX_JSON_BYTES, MAX_JSON_CONTAINERS (protocol.py) and MAX_TYPED_BYTES (wire.py).

    .venv/bin/python bench/parse_cost.py      # about 10 s; best of 3 per row
"""
import time

import numpy as np
import orjson
from tritonclient.grpc import service_pb2 as pb


def best(fn, times: int = 3) -> float:
    spans = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        spans.append(time.perf_counter() - started)
    return min(spans) * 1000


def main() -> None:
    rng = np.random.default_rng(0)
    print("JSON float32 values nested per [N, 3]: orjson.loads, then np.asarray")
    for mib in (1, 2, 4, 8):
        x = rng.normal(size=(mib * (1 << 20) // 63, 3)).astype("float32")
        body = orjson.dumps({"inputs": [{"data": x.tolist()}]})
        data = orjson.loads(body)["inputs"][0]["data"]
        print(f"  {len(body) / 2**20:4.1f} MiB: loads {best(lambda: orjson.loads(body)):6.1f} ms,"
              f" asarray {best(lambda: np.asarray(data)):6.1f} ms")
    print("crafted JSON: loads")
    for mib in (1, 4):
        for unit in (b"0,", b"[],", b"{},"):
            n = (mib << 20) // len(unit)
            body = b'{"pad":[' + unit * (n - 1) + unit[:-1] + b"]}"
            print(f"  {mib} MiB of {unit.decode():4}: {best(lambda: orjson.loads(body)):6.1f} ms")
    body = b"[" + b"[]," * ((1 << 16) - 1) + b"[]]"
    print(f"  65,536 empty lists: {best(lambda: orjson.loads(body)):6.1f} ms")
    print("gRPC typed fp32_contents: np.fromiter over the parsed repeated field")
    for n in (262_144, 1 << 20):
        request = pb.ModelInferRequest()
        request.inputs.add().contents.fp32_contents.extend(np.ones(n, "float32").tolist())
        data = pb.ModelInferRequest.FromString(request.SerializeToString()) \
            .inputs[0].contents.fp32_contents
        print(f"  {n:,} values ({4 * n / 2**20:.0f} MiB): "
              f"{best(lambda: np.fromiter(data, np.float64, count=len(data))):6.1f} ms")


if __name__ == "__main__":
    main()
