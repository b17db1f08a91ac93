"""Prometheus text-format metrics: requests by status, latency, batch size, queue time."""
from __future__ import annotations

import bisect
import threading
from collections import Counter


class Histogram:
    def __init__(self, name: str, help_text: str, buckets):
        self.name, self.help, self.buckets = name, help_text, list(buckets)
        self.counts = {}  # labels -> [bucket counts..., +Inf], sum
        self.lock = threading.Lock()

    def observe(self, value: float, **labels) -> None:
        key = tuple(sorted(labels.items()))
        with self.lock:
            counts, total = self.counts.get(key, ([0] * (len(self.buckets) + 1), 0.0))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self.counts[key] = (counts, total + value)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self.lock:
            for key, (counts, total) in sorted(self.counts.items()):
                labels = ",".join(f'{k}="{v}"' for k, v in key)
                sep = "," if labels else ""
                running = 0
                for bound, n in zip(self.buckets + ["+Inf"], counts):
                    running += n
                    lines.append(f'{self.name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
                lines.append(f"{self.name}_sum{{{labels}}} {total}")
                lines.append(f"{self.name}_count{{{labels}}} {running}")
        return lines


class Metrics:
    def __init__(self):
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        self.latency = Histogram("cnnbp_request_seconds", "request latency in seconds",
                                 [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5])
        self.batch = Histogram("cnnbp_batch_size", "rows per ONNX Runtime call",
                               [1, 2, 4, 8, 16, 32, 64, 128, 256])
        self.queue = Histogram("cnnbp_queue_seconds", "time a request waited for its batch",
                               [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1])

    def request(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(route, status)] += 1
        self.latency.observe(seconds, route=route)

    def render(self) -> str:
        lines = ["# HELP cnnbp_requests_total requests by route and HTTP status",
                 "# TYPE cnnbp_requests_total counter"]
        with self.lock:
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'cnnbp_requests_total{{route="{route}",status="{status}"}} {n}')
        for h in (self.latency, self.batch, self.queue):
            lines += h.render()
        return "\n".join(lines) + "\n"
