"""Reading an HTTP request body within its bounds, and parsing it on or off the event loop."""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

from .protocol import BadRequest

# bodies up to this size are parsed on the event loop (well under a millisecond): the hop to a
# thread would cost more; bigger ones on the parse thread, one at a time. A parse holds the GIL
# whatever thread runs it, so its cost is bounded by size (protocol.MAX_JSON_BYTES, wire.py)
INLINE_BYTES = 64 << 10


def header(scope, name: bytes) -> bytes | None:
    """The raw value of request header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(scope, receive, max_body: int,
                    fits: Callable[[int], None] = lambda size: None) -> bytes:
    """The request body, up to ``max_body`` bytes (--max-body) and what ``fits(size)`` lets
    through (it raises over the request's own bound): a declared Content-Length over either is
    refused before a byte is read. The connection layer times out a slow body."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > max_body:
            raise BadRequest(f"body of {declared.decode()} bytes exceeds the limit of {max_body} "
                             "(--max-body)", 413)
        fits(int(declared))
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise BadRequest(f"body exceeds the limit of {max_body} bytes (--max-body)", 413)
        fits(size)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def offload(parser: Executor, fn, size: int):
    """``fn()`` for a request of ``size`` bytes: inline when small, else on ``parser`` (the one
    parse thread)."""
    if size <= INLINE_BYTES:
        return fn()
    return await asyncio.get_running_loop().run_in_executor(parser, fn)
