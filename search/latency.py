"""A checked net → its ONNX Runtime batch-1 latency on this machine, cached by net.

Only candidates that pass the static budgets are measured (building and converting costs
seconds); the cache (``OUT/latency.json``) keys on the layers, so a net is measured once
whatever its training values.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

REPEATS = 50  # timed runs after 5 warm-up runs; the median is kept


class LatencyCache:
    """Batch-1 latency per distinct net, measured once and kept in a JSON file, so a
    resumed search (or a net sampled twice) is not timed again."""
    def __init__(self, path: Path):
        self.path = path
        self.known = json.loads(path.read_text()) if path.is_file() else {}

    def __call__(self, compiled) -> float:
        """The median latency in ms of ``compiled``'s net (training keys do not count)."""
        key = _key(compiled.resolved)
        if key not in self.known:
            self.known[key] = measure(compiled.network)
            from cnnbp.contract.atomic import write_json
            write_json(self.path, self.known)
        return self.known[key]


def _key(resolved: dict) -> str:
    net = {k: v for k, v in resolved.items() if k not in ("training", "search", "description")}
    return hashlib.sha256(json.dumps(net, sort_keys=True, default=str).encode()).hexdigest()[:16]


def measure(network) -> float:
    """Median milliseconds of one batch-1 ONNX Runtime call (CPU) of the built net."""
    from cnnbp.builder import build_model
    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.export.onnx_export import to_onnx
    from cnnbp.export.parity import session
    import_tensorflow()
    proto = to_onnx(build_model(network))
    sess = session(proto.SerializeToString())
    name = sess.get_inputs()[0].name
    x = np.zeros((1, *network.input_shape), dtype="float32")
    for _ in range(5):
        sess.run(None, {name: x})
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return round(float(np.median(times)), 4)
