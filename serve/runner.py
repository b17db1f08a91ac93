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
from .config import ServeConfig
from .connection import Limits, protocol


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def serve(config: ServeConfig) -> None:
    """Load the bundles under ``config.root`` and serve them over HTTP (and gRPC unless
    ``config.grpc_port`` is None) until SIGINT/SIGTERM. Bad settings, a taken port or a
    public host without a token raise ``UsageError`` before any model loads."""
    config.check()
    if not is_loopback(config.host) and not config.token:
        raise UsageError(f"--host {config.host}: serving there exposes the models beyond this "
                         "machine: set a bearer token with --token (or CNNBP_TOKEN)")
    _check_free(config.host, config.port, "--port")
    if config.grpc_port is not None:
        _check_free(config.host, config.grpc_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not config.access_log:
        logging.getLogger("cnnbp.serve.access").setLevel(logging.WARNING)
    import uvicorn
    app = App(repository.load(config.root), config)
    _raise_file_limit(config.max_connections + 256)  # model files, pipes, the listening socket
    logging.getLogger("cnnbp.serve").info(
        "listening on http://%s:%d — %s; dynamic batching %s", config.host, config.port,
        ", ".join(app.models), f"up to {config.max_batch} within {config.max_delay_ms:g} ms"
        if config.max_delay_ms > 0 else "off")
    import importlib.util
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    limits = Limits(config.max_header_bytes, config.timeout_header, config.timeout_body,
                    config.max_connections, app.refused)
    server = _server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level="warning", loop=loop,
        http=protocol(limits), timeout_keep_alive=config.timeout_keep_alive,
        timeout_graceful_shutdown=config.grace, lifespan="on", access_log=False), app)
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
        """uvicorn's server, telling the app of the first signal."""

        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                app.begin_shutdown(sig)
            super().handle_exit(sig, frame)
    return Server(config)
