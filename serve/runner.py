"""`cnnbp serve`: load the bundles, then run the ASGI app on uvicorn until SIGINT/SIGTERM.

On a signal uvicorn stops accepting connections and lets in-flight requests finish (up to
``grace`` seconds); the batchers drain before the worker threads stop.
"""
from __future__ import annotations

import ipaddress
import logging

from cnnbp.contract.errors import UsageError

from . import repository
from .app import App
from .connection import Limits, protocol


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(flag: str, value, low, high=None) -> None:
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{flag}: must be {span}, got {value}")


def _raise_file_limit(needed: int) -> None:
    """Lift the soft open-files limit towards the hard one, so the connection cap is reachable."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: keep the limit
        pass


def serve(root: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64,
          max_delay_ms: float = 2.0, max_body: int = 16 << 20, token: str | None = None,
          grace: float = 30.0, *, max_batch_rows: int | None = None,
          max_image_pixels: int = repository.MAX_IMAGE_PIXELS, max_header_bytes: int = 64 << 10,
          timeout_keep_alive: float = 5.0, timeout_header: float = 10.0,
          timeout_body: float = 30.0, max_connections: int = 1000) -> None:
    """Serve until a signal. ``max_batch_rows`` (rows per request) defaults to ``max_batch``."""
    _check("--port", port, 0, 65535)
    _check("--max-batch", max_batch, 1)
    _check("--max-body", max_body, 1)
    if max_batch_rows is not None:
        _check("--max-batch-rows", max_batch_rows, 1)
    _check("--max-image-pixels", max_image_pixels, 1)
    _check("--max-header-bytes", max_header_bytes, 1024)
    _check("--max-connections", max_connections, 1)
    for flag, seconds in (("--timeout-keep-alive", timeout_keep_alive),
                          ("--timeout-header", timeout_header), ("--timeout-body", timeout_body)):
        if not seconds > 0:
            raise UsageError(f"{flag}: must be a positive number of seconds, got {seconds}")
    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host}: serving there exposes the models beyond this machine: "
                         "set a bearer token with --token (or CNNBP_TOKEN)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import uvicorn
    app = App(repository.load(root), max_batch, max_delay_ms, max_body, token,
              max_batch_rows=max_batch_rows, max_image_pixels=max_image_pixels)
    _raise_file_limit(max_connections + 256)  # model files, pipes and the listening socket
    logging.getLogger("cnnbp.serve").info(
        "listening on http://%s:%d — %s; dynamic batching %s", host, port,
        ", ".join(app.models), f"up to {max_batch} within {max_delay_ms:g} ms"
        if max_delay_ms > 0 else "off")
    import importlib.util
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    limits = Limits(max_header_bytes, timeout_header, timeout_body, max_connections)
    uvicorn.run(app, host=host, port=port, log_level="warning", loop=loop, http=protocol(limits),
                timeout_keep_alive=timeout_keep_alive, timeout_graceful_shutdown=grace,
                lifespan="on", access_log=False)
