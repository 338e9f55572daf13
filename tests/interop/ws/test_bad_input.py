"""Bad input over a real socket: invalid UTF-8 is closed with 1007, an oversized message and a zip
bomb with 1009, garbage handshakes get 4xx, and a client that never reads is dropped while the
server's buffered bytes for it stay under the configured limit."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import zlib
from typing import Any

import pytest

from hivecast.ws.frames import FrameParser, encode_frame, parse_close_payload
from hivecast.ws.handshake import accept_key

MASK = b"\x11\x22\x33\x44"


async def raw_connect(port: int, extensions: str | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    writer.write((f"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert accept_key(key).encode() in head
    return reader, writer


async def close_code_after(reader: asyncio.StreamReader) -> int:
    parser = FrameParser(expect_masked=False, max_frame_size=1 << 24, allowed_rsv1=True)
    while True:
        data = await reader.read(65536)
        if not data:
            return 1006
        parser.feed(data)
        while (f := parser.next_frame()) is not None:
            if f.opcode == 8:
                return parse_close_payload(f.data)[0]


@pytest.fixture
async def port(node_factory: Any) -> int:
    node = await node_factory(ws={"echo": True, "max_message_size": 1 << 20, "write_limit": 256 * 1024})
    return int(node.services["http_port"])


async def test_invalid_utf8_closes_1007(port: int) -> None:
    async with asyncio.timeout(10):
        reader, writer = await raw_connect(port)
        writer.write(encode_frame(1, b"valid", fin=False, mask=MASK) + encode_frame(0, b"\xf8\x88\x80", mask=MASK))
        assert await close_code_after(reader) == 1007
        writer.close()


async def test_oversized_message_closes_1009(port: int) -> None:
    async with asyncio.timeout(10):
        reader, writer = await raw_connect(port)
        writer.write(encode_frame(2, b"\x00" * ((1 << 20) + 1), mask=MASK))
        assert await close_code_after(reader) == 1009
        writer.close()


async def test_zip_bomb_closes_1009(port: int) -> None:
    async with asyncio.timeout(20):
        reader, writer = await raw_connect(port, "permessage-deflate")
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = c.compress(b"\x00" * (256 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 400_000  # a 256 MiB message in a few hundred KiB
        writer.write(encode_frame(2, bomb[:-4], rsv1=True, mask=MASK))
        assert await close_code_after(reader) == 1009
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: AAAA\r\nSec-WebSocket-Version: 13\r\n\r\n",
])
async def test_bad_handshakes_get_4xx(port: int, request_bytes: bytes) -> None:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        head = await reader.readuntil(b"\r\n")
        assert head.split()[1][:1] == b"4", head
        writer.close()


@pytest.mark.slow
async def test_client_that_never_reads_is_dropped_within_the_limit(node_factory: Any) -> None:
    """The server echoes to a client that never reads: its sends wait for the peer above the high-water
    mark, the peer is dropped when it has not caught up within `write_timeout`, and the bytes held for
    it never pass `write_limit`."""
    limit = 512 * 1024
    node = await node_factory(ws={"echo": True, "write_limit": limit, "write_timeout": 1.0})
    server = node.services["ws_server"]
    _, writer = await raw_connect(int(node.services["http_port"]))
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.transport.pause_reading()  # the client never reads again
    message = os.urandom(32 * 1024)
    frame = encode_frame(2, message, mask=MASK)
    peak = 0
    async with asyncio.timeout(60):
        while server.dropped_slow == 0:
            for ws in list(server.connections):
                peak = max(peak, ws.channel.write_buffer_size())
            if writer.transport.is_closing():
                break
            try:
                writer.write(frame)  # each is echoed back into the server's buffer for us
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0)
        for ws in list(server.connections):
            await ws.wait_closed()
    assert server.dropped_slow == 1
    assert peak <= limit
    writer.close()
