"""Our WebSocket against other implementations, on loopback: the `websockets` and `aiohttp` clients
against our server, and our client against their servers (with permessage-deflate both ways)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hivecast.ws import ConnectionClosed, connect
from tests.interop.ws.helpers import MESSAGES, assert_echoes

pytestmark = pytest.mark.interop



@pytest.fixture
async def echo_url(node_factory: Any) -> str:
    node = await node_factory(ws={"echo": True})
    return f"ws://127.0.0.1:{node.services['http_port']}/ws/echo"


async def test_websockets_client_against_our_server(echo_url: str) -> None:
    import websockets

    for compression in ("deflate", None):
        async with asyncio.timeout(20):
            async with websockets.connect(echo_url, compression=compression, max_size=None) as ws:
                if compression:
                    assert ws.response.headers["sec-websocket-extensions"].startswith("permessage-deflate")
                for m in MESSAGES:
                    await ws.send(m)
                    assert await ws.recv() == m
                latency = await ws.ping()
                await latency
                await ws.close(4010, "done")
            assert ws.close_code == 4010


async def test_aiohttp_client_against_our_server(echo_url: str) -> None:
    import aiohttp

    async with asyncio.timeout(20), aiohttp.ClientSession() as session:
        for compress in (15, 0):
            async with session.ws_connect(echo_url, compress=compress, max_msg_size=0) as ws:
                if compress:
                    assert ws.compress == 15
                for m in MESSAGES:
                    if isinstance(m, str):
                        await ws.send_str(m)
                        assert (await ws.receive()).data == m
                    else:
                        await ws.send_bytes(m)
                        assert (await ws.receive()).data == m
                await ws.close(code=1000)
            assert ws.close_code == 1000


async def test_our_client_against_websockets_server() -> None:
    import websockets

    async def handler(conn: Any) -> None:
        async for msg in conn:
            await conn.send(msg)

    async with asyncio.timeout(20), websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}/")
        assert ws.deflate is not None
        await assert_echoes(ws)
        await ws.ping()
        await ws.close(1000, "bye")
        assert ws.close_code == 1000


async def test_our_client_against_aiohttp_server() -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with asyncio.timeout(20):
            ws = await connect(f"ws://127.0.0.1:{port}/ws")
            assert ws.deflate is not None
            await assert_echoes(ws)
            await ws.close()
            assert ws.close_code == 1000
    finally:
        await runner.cleanup()


async def test_server_closes_with_going_away_on_shutdown(node_factory: Any) -> None:
    import websockets

    node = await node_factory(ws={"echo": True})
    url = f"ws://127.0.0.1:{node.services['http_port']}/ws/echo"
    async with asyncio.timeout(10), websockets.connect(url) as ws:
        await ws.send(json.dumps({"a": 1}))
        await ws.recv()
        await node.stop()
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1001


async def test_our_client_sees_refused_handshake(node_factory: Any) -> None:
    from hivecast.ws import HandshakeError

    node = await node_factory()  # no echo route: 404
    with pytest.raises(HandshakeError) as info:
        await connect(f"ws://127.0.0.1:{node.services['http_port']}/ws/echo")
    assert info.value.status == 404
    with pytest.raises(ConnectionClosed):
        raise ConnectionClosed(1000)
