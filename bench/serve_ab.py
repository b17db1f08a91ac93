"""Two builds of `cnnbp serve` side by side on one bundle: per-request latency at concurrency 1.

On a shared machine the load changes from minute to minute, so the two servers run at the same
time and take turns, round after round, each round ``n`` requests of each kind on one
keep-alive connection; the table gives the median over rounds of each round's p50 and p99.
Kinds: V2 infer with a binary tensor and with JSON, the health probe, and a 404 (routing,
auth and the error path without the model).
Usage: python bench/serve_ab.py BUNDLE OLD_ROOT NEW_ROOT [n] [rounds]
(a ROOT is a folder whose ``cnnbp`` is the package to run, put first on PYTHONPATH)
"""
import http.client
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import free_port, start  # noqa: E402  (bench/ is not a package)


def bodies(shape):
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype("float32")
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"binary_data": True}}]}).encode()
    doc = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                  "data": x.reshape(-1).tolist()}]}).encode()
    return {"infer binary": ("POST", head + raw, {"Inference-Header-Content-Length":
                                                   str(len(head))}),
            "infer json": ("POST", doc, {"content-type": "application/json"}),
            "health": ("GET", None, {}), "404": ("GET", None, {})}


def run_round(port, model, kinds, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = {}
    for kind, (method, body, headers) in kinds.items():
        path = {"health": "/v2/health/live", "404": "/v2/nope"}.get(
            kind, f"/v2/models/{model}/infer")
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            conn.request(method, path, body, headers)
            resp = conn.getresponse()
            resp.read()
            ms.append((time.perf_counter() - t) * 1000)
            assert resp.status == (404 if kind == "404" else 200), (kind, resp.status)
        out[kind] = (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)))
    conn.close()
    return out


def main(bundle, old, new, n=300, rounds=5):
    bundle = Path(bundle)
    servers = {}
    for label, root in (("before", old), ("after", new)):
        port = free_port()
        env_root = str(Path(root).resolve())
        cmd = [sys.executable, str(Path(env_root) / "cnnbp" / "cli.py"), "serve", str(bundle),
               "--port", str(port), "--no-grpc", "--no-access-log", "--max-delay-ms", "0"]
        os.environ["PYTHONPATH"] = env_root
        servers[label] = (port, start(cmd, port))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", servers["after"][0], timeout=30)
        conn.request("GET", f"/v2/models/{bundle.name}")
        shape = json.loads(conn.getresponse().read())["inputs"][0]["shape"][1:]
        kinds = bodies(shape)
        for port, _ in servers.values():  # warm-up
            run_round(port, bundle.name, kinds, 50)
        results = {label: [] for label in servers}
        for _ in range(rounds):
            for label, (port, _) in servers.items():
                results[label].append(run_round(port, bundle.name, kinds, n))
        print(f"{'request':13} {'build':7} {'p50 ms':>7} {'p99 ms':>7}   (median of {rounds} "
              f"rounds of {n})")
        for kind in kinds:
            for label in servers:
                p50 = statistics.median(r[kind][0] for r in results[label])
                p99 = statistics.median(r[kind][1] for r in results[label])
                print(f"{kind:13} {label:7} {p50:7.3f} {p99:7.3f}")
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:6]))
