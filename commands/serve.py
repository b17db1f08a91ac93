"""``cnnbp serve``: bundles over HTTP and gRPC (the Open Inference Protocol)."""
from __future__ import annotations

import argparse

from . import EXAMPLES


def register(sub) -> None:
    sv = sub.add_parser("serve", help="serve bundles over HTTP and gRPC (Open Inference Protocol)",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sv.add_argument("path", help="a bundle, a folder of bundles, or a Triton model repository")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    sv.add_argument("--grpc-port", type=int, default=8001,
                    help="gRPC port, same host and token as HTTP (default 8001)")
    sv.add_argument("--no-grpc", action="store_true", help="serve HTTP only")
    sv.add_argument("--no-access-log", action="store_true",
                    help="no log line per request (logger cnnbp.serve.access)")
    sv.add_argument("--max-batch", type=int, default=64, help="dynamic batching: rows per call")
    sv.add_argument("--max-delay-ms", type=float, default=2.0,
                    help="dynamic batching: longest wait for a batch to fill (0 = off)")
    sv.add_argument("--max-body", type=int, default=16 << 20, help="request size limit in bytes")
    sv.add_argument("--token", help="require Authorization: Bearer TOKEN (or CNNBP_TOKEN)")
    sv.add_argument("--max-batch-rows", type=int, help="rows one infer request may carry "
                    "(default: --max-batch); more get 413")
    sv.add_argument("--max-image-pixels", type=int, default=25_000_000,
                    help="classify: larger images get 413 (default 25,000,000)")
    sv.add_argument("--max-header-bytes", type=int, default=64 << 10,
                    help="request line and headers; more get 431 (default 65536)")
    sv.add_argument("--timeout-header", type=float, default=10.0,
                    help="seconds for a request head to arrive, else 408 (default 10)")
    sv.add_argument("--timeout-body", type=float, default=30.0,
                    help="seconds for a request body to arrive, else 408 (default 30)")
    sv.add_argument("--timeout-keep-alive", type=float, default=5.0,
                    help="seconds an idle connection stays open (default 5)")
    sv.add_argument("--max-connections", type=int, default=1000,
                    help="open connections; more get 503 (default 1000)")
    sv.add_argument("--grace", type=float, default=30.0,
                    help="seconds in-flight requests get to finish after SIGINT/SIGTERM; "
                         "those still running then get 503 (default 30)")
    sv.set_defaults(run=run)


def run(args) -> int:
    import os

    from cnnbp.serve.config import ServeConfig
    from cnnbp.serve.runner import serve
    serve(ServeConfig(
        root=args.path, host=args.host, port=args.port,
        grpc_port=None if args.no_grpc else args.grpc_port, max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms, max_body=args.max_body,
        token=args.token or os.environ.get("CNNBP_TOKEN"), max_batch_rows=args.max_batch_rows,
        max_image_pixels=args.max_image_pixels, max_header_bytes=args.max_header_bytes,
        timeout_header=args.timeout_header, timeout_body=args.timeout_body,
        timeout_keep_alive=args.timeout_keep_alive, max_connections=args.max_connections,
        grace=args.grace, access_log=not args.no_access_log))
    return 0
