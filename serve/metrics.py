"""Prometheus metrics (prometheus_client): requests by route and status, latency, batching; and
Triton's statistics extension per model (``ModelStats``), served as JSON and over gRPC.

Measured: recording one request costs about 3.4 µs against 1.6 µs for the hand-rolled counters
it replaced, noise beside a request of a few hundred microseconds.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

try:  # the *_created series only double the page; older clients lack the switch
    from prometheus_client import disable_created_metrics
    disable_created_metrics()
except ImportError:  # pragma: no cover
    pass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STAGES = ("compute_input", "compute_infer", "compute_output")


class Metrics:
    """One registry per server, so tests and embedded servers never share counters."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("cnnbp_requests", "answered requests by protocol, route and status "
                                "(HTTP status, or gRPC status name)",
                                ["route", "status", "protocol"], registry=self.registry)
        self.latency = Histogram("cnnbp_request_seconds", "request latency in seconds", ["route"],
                                 buckets=[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25, 1, 5], registry=self.registry)
        self._batch = Histogram("cnnbp_batch_size", "rows per ONNX Runtime call",
                                buckets=[1, 2, 4, 8, 16, 32, 64, 128, 256], registry=self.registry)
        self._queue = Histogram("cnnbp_queue_seconds", "time a request waited for its batch",
                                buckets=[0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1],
                                registry=self.registry)
        self.batch, self.queue = self._batch.observe, self._queue.observe

    def request(self, route: str, status, seconds: float | None, protocol: str = "http") -> None:
        """Count one answered request; ``seconds`` None when no handler timed it (refusals)."""
        self.requests.labels(route, str(status), protocol).inc()
        if seconds is not None:
            self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text of every counter and histogram."""
        return generate_latest(self.registry)


@dataclass
class Duration:
    """Triton's StatisticDuration: how many, and their total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, times: int = 1) -> None:
        """Count ``times`` durations of ``ns`` nanoseconds each."""
        self.count += times
        self.ns += ns * times

    def to_json(self) -> dict:
        """Triton's ``{"count", "ns"}``."""
        return {"count": self.count, "ns": self.ns}


class Timer:
    """The moments of one request: its body read, its input decoded, its scores back from the
    model."""

    def __init__(self):
        self.start = self.read_at = time.perf_counter_ns()
        self.decoded_at = self.inferred_at = 0

    def read(self) -> None:
        """The body is in: compute_input starts here (reading it is the client's time)."""
        self.read_at = time.perf_counter_ns()

    def decoded(self) -> None:
        """The model input is ready: compute_input ends here."""
        self.decoded_at = time.perf_counter_ns()

    def inferred(self) -> None:
        """The scores are back: compute_output starts here."""
        self.inferred_at = time.perf_counter_ns()


class ModelStats:
    """Triton's statistics extension for one model, counted as Triton counts.

    Per request: success or fail (whole request time, once the model is known), compute_input
    (body read or message → model input), queue (waiting for a batch), compute_infer (the ONNX
    Runtime call of its batch), compute_output (scores → response). A failed request counts
    every stage it went through, as a successful one does: one refused while decoding counts
    only fail; one whose outputs are refused (422, not finite) counts all four stages, and its
    rows in inference_count, since the model ran. Per execution: execution_count, the rows in
    inference_count, and batch_stats by rows. Updated on the event loop only: no locks.
    """

    def __init__(self, name: str, metrics: Metrics):
        self.name, self._metrics = name, metrics
        self.last_inference = 0  # milliseconds since the epoch
        self.inference_count = self.execution_count = 0
        self.inference = {k: Duration() for k in ("success", "fail", "queue", *STAGES)}
        self.batches: dict[int, dict[str, Duration]] = {}

    def queued(self, seconds: float) -> None:
        """A request waited ``seconds`` for its batch."""
        self._metrics.queue(seconds)
        self.inference["queue"].add(round(seconds * 1e9))

    def executed(self, rows: int, requests: int, input_ns: int, infer_ns: int,
                 output_ns: int) -> None:
        """One model call on ``rows`` rows gathered from ``requests`` requests."""
        self._metrics.batch(rows)
        self.execution_count += 1
        self.inference_count += rows
        self.inference["compute_infer"].add(infer_ns, requests)  # each waited for the whole call
        batch = self.batches.setdefault(rows, {k: Duration() for k in STAGES})
        for key, ns in zip(STAGES, (input_ns, infer_ns, output_ns)):
            batch[key].add(ns)

    @contextmanager
    def request(self) -> Iterator[Timer]:
        """Count the request run in the ``with`` block: fail if it raises, else success."""
        timer = Timer()
        outcome = "fail"
        try:
            yield timer
            outcome = "success"
        finally:
            end = self._finish(outcome, timer)
            if timer.decoded_at:
                self.inference["compute_input"].add(timer.decoded_at - timer.read_at)
            if timer.inferred_at:
                self.inference["compute_output"].add(end - timer.inferred_at)

    def _finish(self, outcome: str, timer: Timer) -> int:
        end = time.perf_counter_ns()
        self.inference[outcome].add(end - timer.start)
        self.last_inference = time.time_ns() // 1_000_000
        return end

    def to_json(self) -> dict:
        """Triton's ``model_stats`` entry (its HTTP JSON; gRPC parses the same document)."""
        return {"name": self.name, "version": "1", "last_inference": self.last_inference,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {k: d.to_json() for k, d in self.inference.items()},
                "batch_stats": [{"batch_size": rows, **{k: d.to_json() for k, d in s.items()}}
                                for rows, s in sorted(self.batches.items())]}
