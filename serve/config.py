"""The settings of one ``cnnbp serve`` process: a frozen record, checked once at the edge.

``commands/serve.py`` builds it from the command line; ``runner.serve`` and ``App`` read it.
"""
from __future__ import annotations

from dataclasses import dataclass

from cnnbp.contract.errors import UsageError

from .repository import MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ServeConfig:
    """What ``cnnbp serve`` was asked for; the field's flag is in each comment."""

    root: str  # PATH: a bundle, a folder of bundles, or a Triton model repository
    host: str = "127.0.0.1"  # --host
    port: int = 8000  # --port
    grpc_port: int | None = 8001  # --grpc-port; None: --no-grpc
    max_batch: int = 64  # --max-batch: rows per model call
    max_delay_ms: float = 2.0  # --max-delay-ms: longest wait for a batch to fill (0 = off)
    max_body: int = 16 << 20  # --max-body: request bytes
    token: str | None = None  # --token or CNNBP_TOKEN: None serves without auth
    grace: float = 30.0  # --grace: seconds in-flight requests get on SIGINT/SIGTERM
    max_batch_rows: int | None = None  # --max-batch-rows: rows per request (None: max_batch)
    max_image_pixels: int = MAX_IMAGE_PIXELS  # --max-image-pixels
    max_header_bytes: int = 64 << 10  # --max-header-bytes: request line and headers
    timeout_keep_alive: float = 5.0  # --timeout-keep-alive
    timeout_header: float = 10.0  # --timeout-header
    timeout_body: float = 30.0  # --timeout-body
    max_connections: int = 1000  # --max-connections (and gRPC's concurrent calls)
    access_log: bool = True  # not --no-access-log
    stream_idle: float = 60.0  # seconds a gRPC stream with nothing in flight stays open
    workers: int = 2  # ONNX Runtime threads
    decode_workers: int = 2  # image and large-body decode threads

    @property
    def rows_per_request(self) -> int:
        """The rows one request may carry: ``max_batch_rows``, else ``max_batch``."""
        return self.max_batch if self.max_batch_rows is None else self.max_batch_rows

    @property
    def grpc_address(self) -> str | None:
        """``host:grpc_port`` as grpc.aio takes it (IPv6 in brackets); None without gRPC."""
        if self.grpc_port is None:
            return None
        return f"[{self.host}]:{self.grpc_port}" if ":" in self.host \
            else f"{self.host}:{self.grpc_port}"

    def check(self) -> None:
        """Raise ``UsageError`` naming the flag of the first value out of its range."""
        _within("--port", self.port, 0, 65535)
        if self.grpc_port is not None:
            _within("--grpc-port", self.grpc_port, 0, 65535)
            if self.grpc_port == self.port and self.port != 0:
                raise UsageError(f"--grpc-port {self.grpc_port}: the HTTP --port is {self.port}; "
                                 "give gRPC its own port")
        _within("--max-batch", self.max_batch, 1)
        _within("--max-body", self.max_body, 1)
        if self.max_batch_rows is not None:
            _within("--max-batch-rows", self.max_batch_rows, 1)
        _within("--max-image-pixels", self.max_image_pixels, 1)
        _within("--max-header-bytes", self.max_header_bytes, 1024)
        _within("--max-connections", self.max_connections, 1)
        for flag, seconds in (("--timeout-keep-alive", self.timeout_keep_alive),
                              ("--timeout-header", self.timeout_header),
                              ("--timeout-body", self.timeout_body),
                              ("--grace", self.grace)):
            if not seconds > 0:
                raise UsageError(f"{flag}: must be a positive number of seconds, got {seconds}")


def _within(flag: str, value, low, high=None) -> None:
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{flag}: must be {span}, got {value}")
