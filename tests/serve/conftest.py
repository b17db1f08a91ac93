"""A real `cnnbp serve` process on a free loopback port, over real exported bundles."""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import ROOT, free_port


class Server:
    """`cnnbp serve PATH ARGS` on free HTTP and gRPC ports; keyword arguments go straight to
    serve.config.ServeConfig instead, for the settings that have no command-line flag. Its log is
    read all along (a full pipe would stall the server) and kept in ``lines``."""

    def __init__(self, path, *args, env=None, **serve_kwargs):
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        if serve_kwargs:
            command = [sys.executable, "-c", "import json, sys; "
                       "from cnnbp.serve.runner import serve; "
                       "from cnnbp.serve.config import ServeConfig; "
                       "serve(ServeConfig(sys.argv[1], **json.loads(sys.argv[2])))", str(path),
                       json.dumps({"port": self.port, "grpc_port": self.grpc_port,
                                   **serve_kwargs})]
        else:
            command = [sys.executable, str(ROOT / "cli.py"), "serve", str(path), "--port",
                       str(self.port), "--grpc-port", str(self.grpc_port), *args]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})})
        self.lines = []
        self.changed = threading.Condition()  # notified on each log line and at the end
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=1):
                    return
            except OSError as exc:
                if self.proc.poll() is not None:
                    self.reader.join(5)
                    raise RuntimeError("".join(self.lines)) from exc
                # a connect that succeeds is the only sign that the port is bound; between
                # tries, wait on the process, so that an exit ends the wait at once
                try:
                    self.proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        raise RuntimeError("server did not start")

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for_log(self, pattern, timeout: float = 10):
        """The first match of ``pattern`` (a compiled regex) in the log, waiting for the log
        line that brings it (None if none comes within ``timeout`` seconds)."""
        with self.changed:
            self.changed.wait_for(lambda: pattern.search(self.log()) or not self.reader.is_alive(),
                                  timeout)
            return pattern.search(self.log())

    def log(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout=30):
        """The exit status, once the process has ended and its whole log has been read."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.reader.join(5)
            self.proc.stdout.close()

    def stop(self):
        self.proc.terminate()
        return self.wait()


@pytest.fixture(scope="session")
def repo(tmp_path_factory):
    """bundles/digits (2-D, 8x8x1) and bundles/mnist1d (1-D, 40x1), exported from built nets."""
    from cnnbp import cli
    base = tmp_path_factory.mktemp("serve")
    for name in ("digits", "mnist1d"):  # in this process: one TensorFlow start-up, not four
        assert cli.main(["build", name, "-o", str(base / f"{name}.keras")]) == 0
        assert cli.main(["export", str(base / f"{name}.keras"), "-o",
                         str(base / "bundles" / name), "--no-variants", "--triton",
                         str(base / "triton")]) == 0
    return base


@pytest.fixture(scope="session")
def server(repo):
    s = Server(repo / "bundles", "--max-body", "300000")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def session(repo):
    import onnxruntime as ort
    return ort.InferenceSession(str(repo / "bundles" / "digits" / "model.onnx"),
                                providers=["CPUExecutionProvider"])


def post(url, body, headers=None, method="POST"):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def infer_json(x, name="input", datatype="FP32", shape=None):
    return json.dumps({"id": "t1", "inputs": [{"name": name, "datatype": datatype,
                                               "shape": list(shape or x.shape),
                                               "data": x.reshape(-1).tolist()}]}).encode()


@pytest.fixture(scope="session")
def big_repo(repo):
    """bundles/big: a 224x224x3 model small enough to build in seconds (16x16 stride-16 conv),
    whose requests are as large as a real image model's."""
    from cnnbp import cli
    base = repo / "big"
    assert cli.main(["build", "-e", "INPUT(224x224x3)-CONV(4,16x16,stride=16)-RELU-FC(10)-SOFTMAX",
                     "-o", str(base / "big.keras")]) == 0
    assert cli.main(["export", str(base / "big.keras"), "-o", str(base / "bundles" / "big"),
                     "--no-variants"]) == 0
    return base
