"""Serving throughput and latency: `cnnbp serve` (batching on/off) vs a hand-written FastAPI server.

digits and cifar10_small bundles (exported from built nets), one-sample requests with binary
and JSON bodies, at concurrency 1, 16 and 64, all driven by the same load generator (threads
with persistent HTTP connections) in one run; the raw ONNX Runtime call is the floor.
Usage: python bench/serve_speed.py [requests_per_run]
"""
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from serve_load import free_port, raw_call, start  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def load(port, path, make_body, concurrency, n):
    local = threading.local()
    latencies = []

    def one(i):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body, headers = make_body(i)
        t = time.perf_counter()
        local.conn.request("POST", path, body, headers)
        resp = local.conn.getresponse()
        resp.read()
        latencies.append(time.perf_counter() - t)
        return resp.status

    for i in range(min(50, n)):  # warm-up on one connection
        one(i)
    latencies.clear()
    start_t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start_t
    errors = sum(s != 200 for s in statuses)
    ms = np.array(latencies) * 1000
    return n / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors


def main(n: int = 1500) -> None:
    work = Path(tempfile.mkdtemp())
    for name in ("digits", "cifar10_small"):
        subprocess.run([PY, "cli.py", "build", name, "-o", str(work / f"{name}.keras")], cwd=ROOT,
                       check=True, capture_output=True)
        subprocess.run([PY, "cli.py", "export", str(work / f"{name}.keras"), "-o",
                        str(work / "bundles" / name), "--no-variants"], cwd=ROOT, check=True,
                       capture_output=True)
    import onnxruntime as ort
    print(f"{'model':13} {'server':22} {'body':6} {'conc':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} errors")
    for name in ("digits", "cifar10_small"):
        model = work / "bundles" / name / "model.onnx"
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        shape = [int(d) for d in sess.get_inputs()[0].shape[1:]]
        xs = np.random.default_rng(0).normal(size=(64, 1, *shape)).astype("float32")
        raw = raw_call(model, shape)
        print(f"{name:13} {'raw onnxruntime call':22} {'-':6} {1:>4} {raw['rps']:8.0f} "
              f"{raw['p50_ms']:7.3f} {raw['p99_ms']:7.3f}")

        def oip(binary):
            bodies = [make_oip(xs[i], binary) for i in range(64)]
            return lambda i: bodies[i % 64]

        def make_oip(x, binary):
            if binary:
                raw = x.tobytes()
                head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                               "shape": list(x.shape),
                                               "parameters": {"binary_data_size": len(raw)}}],
                                   "outputs": [{"name": "probabilities",
                                                "parameters": {"binary_data": True}}]}).encode()
                return head + raw, {"Inference-Header-Content-Length": str(len(head))}
            return json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                           "shape": list(x.shape),
                                           "data": x.reshape(-1).tolist()}]}).encode(), {}

        def plain(binary):  # bodies are built once, so the load generator only sends
            bodies = [(xs[i].tobytes(), {"content-type": "application/octet-stream"}) if binary
                      else (json.dumps({"data": xs[i].tolist()}).encode(),
                            {"content-type": "application/json"}) for i in range(64)]
            return lambda i: bodies[i % 64]

        servers = [
            ("cnnbp serve, batching", [PY, "cli.py", "serve", str(model.parent), "--max-delay-ms", "2"],
             f"/v2/models/{name}/infer", oip),
            ("cnnbp serve, no batch", [PY, "cli.py", "serve", str(model.parent), "--max-delay-ms", "0"],
             f"/v2/models/{name}/infer", oip),
            ("hand-written FastAPI", [PY, "bench/handwritten_server.py", str(model)], "/infer", plain),
        ]
        for label, cmd, path, body in servers:
            port = free_port()
            proc = start(cmd + ["--port", str(port)] if "cli.py" in cmd else cmd + [str(port)], port)
            try:
                for binary in (True, False):
                    for conc in (1, 16, 64):
                        rps, p50, p99, errors = load(port, path, body(binary), conc, n)
                        print(f"{name:13} {label:22} {'binary' if binary else 'json':6} {conc:>4} "
                              f"{rps:8.0f} {p50:7.3f} {p99:7.3f} {errors}", flush=True)
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1500)
