"""`cnnbp serve`: load the bundles, then run the ASGI app on uvicorn until SIGINT/SIGTERM.

On a signal uvicorn stops accepting connections and lets in-flight requests finish (up to
``grace`` seconds); the batchers drain before the worker threads stop.
"""
from __future__ import annotations

import ipaddress
import logging

from builder.errors import BlueprintError, Problem

from . import repository
from .app import App


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(root: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64,
          max_delay_ms: float = 2.0, max_body: int = 16 << 20, token: str | None = None,
          grace: float = 30.0) -> None:
    if not is_loopback(host) and not token:
        raise BlueprintError(Problem("", f"serving on {host} exposes the models beyond this "
                                     "machine: set a bearer token with --token (or CNNBP_TOKEN)"),
                             "serve")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import uvicorn
    app = App(repository.load(root), max_batch, max_delay_ms, max_body, token)
    logging.getLogger("cnnbp.serve").info(
        "listening on http://%s:%d — %s; dynamic batching %s", host, port,
        ", ".join(app.models), f"up to {max_batch} within {max_delay_ms:g} ms"
        if max_delay_ms > 0 else "off")
    import importlib.util
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    uvicorn.run(app, host=host, port=port, log_level="warning", loop=loop, http="httptools",
                timeout_graceful_shutdown=grace, lifespan="on", access_log=False)
