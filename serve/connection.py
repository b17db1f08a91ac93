"""uvicorn's httptools protocol with the connection limits that httptools and uvicorn lack.

httptools (llhttp) buffers a request head of any size, and uvicorn times out only a
keep-alive connection after a response: a socket that never sends, or sends its head or
body a byte at a time, stays open for ever. This subclass adds (a request that arrives in
one read costs no timer):

- a cap on the request head (URL and headers): 431, then close;
- deadlines for the head (from its first byte) and the body (from the end of the head):
  408, then close;
- the keep-alive timeout from the moment a connection opens, so a silent socket is closed;
- a cap on open connections: the connection over it gets 503 and is closed at once, so
  idle sockets cannot use up the process's file descriptors.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("cnnbp.serve")


@dataclass(frozen=True)
class Limits:
    """The connection limits of ``cnnbp serve`` (the --max-header-bytes, --timeout-header,
    --timeout-body and --max-connections flags)."""

    max_head: int = 64 << 10
    timeout_head: float = 10.0
    timeout_body: float = 30.0
    max_connections: int = 1000
    # told (path or None, status) of each refusal, so /metrics counts what the app never sees
    on_refused: Optional[Callable[[Optional[str], int], None]] = None


def protocol(limits: Limits) -> type:
    """A protocol class for ``uvicorn.run(http=...)`` enforcing ``limits``."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


def _response(status: int, phrase: str, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``limits`` enforced (see the module docstring)."""

    limits = Limits()
    _warned_at = 0.0  # the last "connection cap reached" warning, shared by all connections

    def connection_made(self, transport) -> None:
        """Refuse the connection over the cap (503); else arm the keep-alive timeout at once, so
        a silent socket is closed."""
        super().connection_made(transport)
        self._stage = None  # "head" or "body" while a request is partly received
        self._head_bytes, self._messages = 0, 0
        self._deadline, self._deadline_stage = None, None
        if len(self.connections) > self.limits.max_connections:
            if time.monotonic() - GuardedProtocol._warned_at > 60:
                GuardedProtocol._warned_at = time.monotonic()
                log.warning("refusing connections: %d open (--max-connections)",
                            self.limits.max_connections)
            self._refuse(503, "Service Unavailable", f"the server holds its limit of "
                         f"{self.limits.max_connections} open connections; retry shortly")
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc) -> None:
        """Disarm any deadline of the request being received."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed llhttp, then arm a deadline when the read ends inside a request, and cut a head
        over the cap (431)."""
        if self.transport.is_closing():  # refused: parse nothing more
            return
        was_head, begun = self._stage == "head", self._messages
        super().data_received(data)
        stage = self._stage
        if stage is None or self.transport.is_closing():  # the usual case: a whole request
            return
        # a deadline is armed only when a read ends inside a request, so a request that
        # arrives in one read costs no timer
        if self._deadline_stage != stage:
            self._disarm()
            seconds = self.limits.timeout_head if stage == "head" else self.limits.timeout_body
            self._deadline = self.loop.call_later(seconds, self._expire, stage)
            self._deadline_stage = stage
        if stage != "head":
            return
        if was_head and begun == self._messages:  # the whole read belongs to the pending head
            self._head_bytes += len(data)
        # a read in which a head began is not counted (its split is unknown), so a head is
        # cut at most one read (256 KiB) past the cap, before llhttp's buffering gets costly
        if self._head_bytes > self.limits.max_head:
            self._refuse(431, "Request Header Fields Too Large", f"the request head (URL and "
                         f"headers) exceeds {self.limits.max_head} bytes (--max-header-bytes)")

    def on_message_begin(self) -> None:
        """A request head starts: count its bytes from here."""
        super().on_message_begin()
        self._messages += 1
        self._stage, self._head_bytes = "head", 0

    def on_headers_complete(self) -> None:
        """The head is in: the body's deadline replaces the head's."""
        self._stage = "body"
        if self._deadline is not None:
            self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is in: no deadline until the next one starts."""
        super().on_message_complete()
        self._stage = None
        if self._deadline is not None:
            self._disarm()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline, self._deadline_stage = None, None

    def _expire(self, stage: str) -> None:
        self._deadline, self._deadline_stage = None, None
        if self.transport.is_closing():
            return
        if stage == "head":
            self._refuse(408, "Request Timeout", f"the request head did not arrive within "
                         f"{self.limits.timeout_head:g} s (--timeout-header)")
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:  # answered already: just hang up
            self.transport.close()
            return
        if cycle is not None:  # the app's receive() now sees a disconnect; its reply is dropped
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(408, "Request Timeout", f"the request body did not arrive within "
                     f"{self.limits.timeout_body:g} s (--timeout-body)")

    def send_400_response(self, msg: str) -> None:
        """llhttp refused the request: answer 400 in JSON, as every other error, and close."""
        self._refuse(400, "Bad Request", "not a valid HTTP/1.1 request (request line, header or "
                     "chunk syntax)")

    def _path(self) -> str | None:
        """The path of the request being received, if its URL has arrived (for /metrics)."""
        if self._stage == "body":
            return self.scope.get("path")
        if self._stage == "head" and getattr(self, "url", b""):  # uvicorn parses it at the end
            return self.url.split(b"?", 1)[0].decode("latin-1")
        return None

    def _refuse(self, status: int, phrase: str, message: str) -> None:
        if self.limits.on_refused is not None:
            self.limits.on_refused(self._path(), status)
        self._disarm()
        self._unset_keepalive_if_required()
        self.transport.write(_response(status, phrase, message))
        self.transport.close()
