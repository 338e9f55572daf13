"""What the peer tests share: the messages every echo must return unchanged, and the check for our client."""

from __future__ import annotations

from hivecast.ws import WebSocket

# short and long text (multi-byte UTF-8), binary with every kind of byte, 1 MiB, and both empties
MESSAGES: list[str | bytes] = ["hello", "κόσμε " * 300, b"\x00\x01\xff", b"z" * (1 << 20), "", b""]


async def assert_echoes(ws: WebSocket) -> None:
    """Each message goes out through our client and comes back equal, text as text, binary as binary."""
    for m in MESSAGES:
        await ws.send(m)
        assert await ws.recv() == m
