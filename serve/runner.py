"""`cnnbp serve`: load the bundles, then run the ASGI app on uvicorn until SIGINT/SIGTERM.

HTTP (uvicorn) and gRPC (grpc.aio, started by the app's lifespan) share one event loop, so
they share the models and the dynamic batchers. On a signal uvicorn stops accepting
connections and lets in-flight requests finish (up to ``grace`` seconds); the gRPC server
gets the same grace, and the batchers drain before the worker threads stop.
"""
from __future__ import annotations

import ipaddress
import logging
import socket

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


def _check_free(host: str, port: int, flag: str = "--grpc-port") -> None:
    """Fail early, with the flag's name, when a port is taken (before models load)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise UsageError(f"{flag} {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                         "pick another port" + (", or --no-grpc" if flag == "--grpc-port" else "")
                         ) from None


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
          timeout_body: float = 30.0, max_connections: int = 1000,
          grpc_port: int | None = 8001, access_log: bool = True,
          stream_idle: float = 60.0) -> None:
    """Serve until a signal. ``max_batch_rows`` (rows per request) defaults to ``max_batch``;
    ``grpc_port`` None serves HTTP only; ``stream_idle``: seconds a gRPC stream with nothing
    in flight is kept open."""
    _check("--port", port, 0, 65535)
    if grpc_port is not None:
        _check("--grpc-port", grpc_port, 0, 65535)
        if grpc_port == port and port != 0:
            raise UsageError(f"--grpc-port {grpc_port}: the HTTP --port is {port}; give gRPC "
                             "its own port")
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
    _check_free(host, port, "--port")
    if grpc_port is not None:
        _check_free(host, grpc_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not access_log:
        logging.getLogger("cnnbp.serve.access").setLevel(logging.WARNING)
    import uvicorn
    app = App(repository.load(root), max_batch, max_delay_ms, max_body, token,
              max_batch_rows=max_batch_rows, max_image_pixels=max_image_pixels,
              grpc_address=None if grpc_port is None else
              (f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"), grace=grace,
              max_concurrent_rpcs=max_connections, stream_idle=stream_idle)
    _raise_file_limit(max_connections + 256)  # model files, pipes and the listening socket
    logging.getLogger("cnnbp.serve").info(
        "listening on http://%s:%d — %s; dynamic batching %s", host, port,
        ", ".join(app.models), f"up to {max_batch} within {max_delay_ms:g} ms"
        if max_delay_ms > 0 else "off")
    import importlib.util
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    limits = Limits(max_header_bytes, timeout_header, timeout_body, max_connections,
                    app.refused)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", loop=loop,
                            http=protocol(limits), timeout_keep_alive=timeout_keep_alive,
                            timeout_graceful_shutdown=grace, lifespan="on", access_log=False)
    server = _server(config, app)
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C: uvicorn forced the exit
        pass
    except SystemExit:  # uvicorn exits when it cannot bind (the port taken since the check)
        if server.started:
            raise
    if not server.started:
        raise UsageError("the server did not start (see the log above)")


def _server(config, app: App):
    """uvicorn's server, which also logs the signal and stops gRPC's intake at that moment."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                app.begin_shutdown(sig)
            super().handle_exit(sig, frame)
    return Server(config)
