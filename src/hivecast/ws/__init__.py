"""Our RFC 6455 / RFC 7692 WebSocket: a sans-I/O core (frames, handshake, deflate, protocol) and
thin asyncio adapters (server routes inside the HTTP front door, a client, broadcast)."""

from hivecast.ws.broadcast import BroadcastResult, broadcast
from hivecast.ws.client import connect
from hivecast.ws.connection import Options, WebSocket
from hivecast.ws.errors import (
    ConnectionClosed,
    HandshakeError,
    InvalidPayload,
    LocalProtocolError,
    MessageTooBig,
    PeerProtocolError,
    WebSocketError,
)
from hivecast.ws.server import WebSocketServer, echo

__all__ = [
    "BroadcastResult",
    "ConnectionClosed",
    "HandshakeError",
    "InvalidPayload",
    "LocalProtocolError",
    "MessageTooBig",
    "Options",
    "PeerProtocolError",
    "WebSocket",
    "WebSocketError",
    "WebSocketServer",
    "broadcast",
    "connect",
    "echo",
]
