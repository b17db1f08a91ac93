"""Serving under a load generator in its own process: `cnnbp serve` over HTTP (binary, JSON) and
gRPC against the hand-written FastAPI server and the raw ONNX Runtime call, in one run.

HTTP load: wrk (Debian's ``wrk``; closed loop, keep-alive, one fixed request) with ``-t1 -cC``.
gRPC load: bench/grpc_load.py (grpc.aio, one channel, C calls in flight). digits and
cifar10_small bundles exported from built nets, one-sample requests, concurrency 1, 16, 64.
Usage: python bench/serve_load.py [seconds_per_run] [--json OUT]
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CONCURRENCY = (1, 16, 64)
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}") from None
            time.sleep(0.1)
    raise RuntimeError(f"{cmd} did not start")


def wrk(port: int, path: str, body: bytes, headers: dict, conc: int, seconds: float,
        work: Path) -> dict:
    """One wrk run; the body goes through a Lua script as a file, so any bytes are sent."""
    (work / "body.bin").write_bytes(body)
    lines = [f'local f = io.open("{work / "body.bin"}", "rb")', 'wrk.body = f:read("*all")',
             "f:close()", 'wrk.method = "POST"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += ["function done(summary, latency, requests)",
              '  io.write(string.format("JSON {\\"p50\\": %d, \\"p99\\": %d, \\"non2xx\\": %d}\\n",',
              "    latency:percentile(50), latency:percentile(99),",
              "    summary.errors.status + summary.errors.connect + summary.errors.read"
              " + summary.errors.write + summary.errors.timeout))", "end"]
    (work / "post.lua").write_text("\n".join(lines) + "\n")
    subprocess.run(["wrk", "-t1", f"-c{conc}", "-d1s", "-s", str(work / "post.lua"),
                    f"http://127.0.0.1:{port}{path}"], capture_output=True)  # warm-up
    out = subprocess.run(["wrk", "-t1", f"-c{conc}", f"-d{seconds:g}s", "--timeout", "10s",
                          "-s", str(work / "post.lua"), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    extra = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    return {"rps": rps, "p50_ms": extra["p50"] / 1000, "p99_ms": extra["p99"] / 1000,
            "errors": extra["non2xx"]}


def grpc_load(port: int, model: str, shape, conc: int, seconds: float) -> dict:
    out = subprocess.run([PY, str(ROOT / "bench" / "grpc_load.py"), f"127.0.0.1:{port}", model,
                          ",".join(map(str, shape)), str(conc), str(seconds)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def oip_binary(x: np.ndarray):
    raw = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"binary_data": True}}]}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)),
                        "Content-Type": "application/octet-stream"}


def oip_json(x: np.ndarray):
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.reshape(-1).tolist()}]}).encode(), \
        {"Content-Type": "application/json"}


def raw_call(model: Path, shape) -> dict:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    xs = np.random.default_rng(0).normal(size=(64, 1, *shape)).astype("float32")
    t = []
    for i in range(2000):
        s = time.perf_counter()
        sess.run(None, {"input": xs[i % 64]})
        t.append(time.perf_counter() - s)
    t = t[200:]
    return {"rps": 1 / statistics.mean(t), "p50_ms": statistics.median(t) * 1000,
            "p99_ms": float(np.percentile(t, 99)) * 1000, "errors": 0}


def main(seconds: float = 4.0, json_out: str | None = None) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp())
    rows = []

    def row(model, server, body, conc, r):
        rows.append({"model": model, "server": server, "body": body, "c": conc, **r})
        print(f"{model:13} {server:21} {body:6} {conc:>3} {r['rps']:8.0f} {r['p50_ms']:7.3f} "
              f"{r['p99_ms']:7.3f} {r['errors']}", flush=True)

    print(f"{'model':13} {'server':21} {'body':6} {'c':>3} {'req/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} errors")
    for name in ("digits", "cifar10_small"):
        subprocess.run([PY, "cli.py", "build", name, "-o", str(work / f"{name}.keras")], cwd=ROOT,
                       check=True, capture_output=True)
        subprocess.run([PY, "cli.py", "export", str(work / f"{name}.keras"), "-o",
                        str(work / "bundles" / name), "--no-variants"], cwd=ROOT, check=True,
                       capture_output=True)
        model = work / "bundles" / name / "model.onnx"
        import onnxruntime as ort
        shape = [int(d) for d in ort.InferenceSession(
            str(model), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[1:]]
        row(name, "raw onnxruntime call", "-", 1, raw_call(model, shape))
        x = np.random.default_rng(1).normal(size=(1, *shape)).astype("float32")
        port, grpc_port = free_port(), free_port()
        proc = start([PY, "cli.py", "serve", str(model.parent), "--port", str(port),
                      "--grpc-port", str(grpc_port)], port)
        try:
            path = f"/v2/models/{name}/infer"
            for label, (body, headers) in (("binary", oip_binary(x)), ("json", oip_json(x))):
                for conc in CONCURRENCY:
                    row(name, "cnnbp serve HTTP", label, conc,
                        wrk(port, path, body, headers, conc, seconds, work))
            for conc in CONCURRENCY:
                row(name, "cnnbp serve gRPC", "raw", conc,
                    grpc_load(grpc_port, name, shape, conc, seconds))
        finally:
            proc.terminate()
            proc.wait()
        port = free_port()
        proc = start([PY, "bench/handwritten_server.py", str(model), str(port)], port)
        try:
            for label, body, headers in (
                    ("binary", x.tobytes(), {"Content-Type": "application/octet-stream"}),
                    ("json", json.dumps({"data": x.tolist()}).encode(),
                     {"Content-Type": "application/json"})):
                for conc in CONCURRENCY:
                    row(name, "hand-written FastAPI", label, conc,
                        wrk(port, "/infer", body, headers, conc, seconds, work))
        finally:
            proc.terminate()
            proc.wait()
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        i = args.index("--json")
        out = args[i + 1]
        del args[i:i + 2]
    main(float(args[0]) if args else 4.0, out)
