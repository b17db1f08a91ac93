"""Bearer-token auth, shared by HTTP and gRPC: an Authorization value → allowed or not."""
from __future__ import annotations

import hmac

UNAUTHORIZED = {"www-authenticate": "Bearer"}  # RFC 6750 section 3
# the health probes and the page (which holds no data: it asks for the model list with the
# token) are open; every other path, known or not, answers 401 first without the token
PUBLIC = frozenset({"/v2/health/live", "/v2/health/ready", "/"})


class BearerAuth:
    """Checks ``Authorization: Bearer <token>``; with no token every request is allowed."""

    def __init__(self, token: str | None):
        # header bytes are compared raw; the token is sent as UTF-8 (surrogateescape keeps a
        # CNNBP_TOKEN that is not valid UTF-8 as the bytes it was)
        self.expected = None if token is None else token.encode("utf-8", "surrogateescape")

    @property
    def required(self) -> bool:
        """Whether requests need the token."""
        return self.expected is not None

    def allows(self, value: bytes | None) -> bool:
        """Whether an Authorization value (HTTP header or gRPC metadata) is ``Bearer <token>``;
        the scheme is case-insensitive (RFC 7235), the token compared in constant time."""
        if self.expected is None:
            return True
        scheme, _, token = (value or b"").strip(b" \t").partition(b" ")
        # optional whitespace (RFC 9110's OWS) around the token is no part of it
        return hmac.compare_digest(token.strip(b" \t"), self.expected) \
            and scheme.lower() == b"bearer"
