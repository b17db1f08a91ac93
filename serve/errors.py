"""The server's one error type: a client mistake with its HTTP status (gRPC maps it too)."""
from __future__ import annotations

from cnnbp.contract.errors import ClientError


class BadRequest(ClientError):
    """Turned into HTTP ``status`` with ``{"error": message}`` (and any extra ``headers``)."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def short_repr(value) -> str:
    """``repr(value)`` cut to 60 characters, for quoting client input in messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
