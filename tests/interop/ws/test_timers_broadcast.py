"""Keepalive, idle timeout and the broadcast fast path over real sockets, plus `hivecast serve --ws-echo`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hivecast.ws import Options, WebSocket, broadcast, connect
from tests.conftest import free_port
from tests.e2e.test_cli_serve import start, wait_healthy
from tests.interop.ws.test_bad_input import close_code_after, raw_connect

pytestmark = pytest.mark.interop


async def test_peer_that_never_answers_pings_is_dropped(node_factory: Any) -> None:
    import websockets

    node = await node_factory(ws={"echo": True, "ping_interval": 0.3, "ping_timeout": 0.5})
    server = node.services["ws_server"]
    port = int(node.services["http_port"])
    reader, writer = await raw_connect(port)  # reads, but never answers a ping
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as alive:  # answers pings itself
        async with asyncio.timeout(20):
            assert await close_code_after(reader) == 1006  # transport aborted after the ping: no close frame
            await alive.send("still here")
            assert await alive.recv() == "still here"
    writer.close()
    assert server.accepted == 2


async def test_idle_connection_is_closed_with_1001(node_factory: Any) -> None:
    node = await node_factory(ws={"echo": True, "idle_timeout": 0.5, "ping_interval": None})
    ws = await connect(f"ws://127.0.0.1:{node.services['http_port']}/ws/echo", options=Options(ping_interval=None))
    async with asyncio.timeout(20):
        async for _ in ws:
            pass
    assert ws.close_code == 1001 and ws.close_reason == "idle timeout"


async def test_broadcast_frames_once_per_parameter_set(node_factory: Any) -> None:
    import websockets

    node = await node_factory()
    members: set[WebSocket] = set()
    joined = asyncio.Event()

    async def room(ws: WebSocket) -> None:
        members.add(ws)
        if len(members) == 6:
            joined.set()
        async for _ in ws:
            pass

    node.router.exact("/ws/test-room", node.services["ws_server"].route(room))
    url = f"ws://127.0.0.1:{node.services['http_port']}/ws/test-room"
    clients = [await websockets.connect(url, compression="deflate") for _ in range(3)]
    clients += [await websockets.connect(url, compression=None) for _ in range(3)]
    async with asyncio.timeout(10):
        await joined.wait()
        text = "a compressible broadcast " * 100
        result = broadcast(members, text)
        assert (result.sent, result.failed, result.encodings) == (6, 0, 2)
        for c in clients:
            assert await c.recv() == text
        result = broadcast(members, b"\x00\x01")
        assert result.encodings == 2  # plain and deflate (small messages are sent uncompressed anyway)
        for c in clients:
            assert await c.recv() == b"\x00\x01"
            await c.close()


@pytest.mark.slow
async def test_cli_serve_ws_echo(tmp_path: Path) -> None:
    port = free_port()
    proc = start(["serve", "--ws-echo", "--host", "127.0.0.1", "--http-port", str(port), "--rtsp-port", "0",
                  "--data-dir", str(tmp_path / "data")], tmp_path)
    try:
        await asyncio.to_thread(wait_healthy, port, proc)
        ws = await connect(f"ws://127.0.0.1:{port}/ws/echo")
        await ws.send("from the cli")
        assert await ws.recv() == "from the cli"
        await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def test_handler_that_never_reads_pauses_the_socket(node_factory: Any) -> None:
    """Messages the application does not take are bounded: past the queue limits the socket stops being
    read, so TCP flow control holds the sender back instead of our memory growing."""
    node = await node_factory()
    seen: list[WebSocket] = []
    never = asyncio.Event()

    async def lazy(ws: WebSocket) -> None:
        seen.append(ws)
        await never.wait()

    opts = Options(max_queue=8, max_queue_bytes=256 * 1024, ping_interval=None)
    node.router.exact("/ws/lazy", node.services["ws_server"].route(lazy, options=opts))
    client = await connect(f"ws://127.0.0.1:{node.services['http_port']}/ws/lazy",
                           options=Options(ping_interval=None, write_limit=64 << 20, write_high=64 << 20))
    chunk = b"q" * 65536
    async with asyncio.timeout(20):
        for _ in range(400):  # 25 MiB offered
            client.send_nowait(chunk)
            await asyncio.sleep(0)
        while not seen or not seen[0]._paused:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    ws = seen[0]
    assert ws._paused
    assert ws._queued_bytes <= 256 * 1024 + 2 * 65536 + 262144  # the limit, plus what one read delivered
    assert not ws.closed and not client.closed  # paused, not failed: the rest waits in the kernel and the sender
    never.set()
    client.channel.abort()
