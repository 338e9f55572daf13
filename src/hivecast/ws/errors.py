"""One hierarchy for everything that can go wrong on a WebSocket, each error carrying its close code.

Errors are named for who did wrong: `PeerProtocolError` (the peer broke RFC 6455/7692; we close with
the code RFC 6455 section 7.4 prescribes), `LocalProtocolError` (our caller misused the API), and
`HandshakeError` (the opening handshake failed; it carries the HTTP status to answer with).
"""

from __future__ import annotations


class WebSocketError(Exception):
    """Base of every error raised by `hivecast.ws`."""


class PeerProtocolError(WebSocketError):
    """The peer sent something RFC 6455 forbids; `code` is the close code to fail the connection with."""

    code = 1002

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidPayload(PeerProtocolError):
    """Text that is not UTF-8, or a close reason that is not (RFC 6455 section 8.1): 1007."""

    code = 1007


class MessageTooBig(PeerProtocolError):
    """A frame, message or decompressed message over our limit: 1009."""

    code = 1009


class LocalProtocolError(WebSocketError):
    """Our caller did something the protocol does not allow in the current state."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; `code` and `reason` are what the peer sent (1006 if nothing)."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class HandshakeError(WebSocketError):
    """The opening handshake was refused; `status` is the HTTP status a server answers with."""

    def __init__(self, message: str, status: int = 400, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
