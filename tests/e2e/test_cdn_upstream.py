"""The upstream client against origins that misbehave: garbage, oversized heads, bodies cut
short, silence. The edge answers 502/504 with a clear body and keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivecast.cdn.upstream import UpstreamError, UpstreamLimits, UpstreamPool
from hivecast.net.errors import NetError
from tests.conftest import NodeFactory, node_url

BAD = {
    "garbage": b"NOT HTTP AT ALL\r\n\r\n",
    "huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\n\r\n",
    "many-headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly-a-little",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n",
}


class RawOrigin:
    """Answers every request with fixed bytes, then closes (or says nothing at all)."""

    def __init__(self) -> None:
        self.reply = b""
        self.silent = False
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.silent:
                await asyncio.sleep(30)
            writer.write(self.reply)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def raw_origin() -> AsyncIterator[tuple[RawOrigin, int]]:
    o = RawOrigin()
    port = await o.start()
    yield o, port
    await o.stop()


async def test_misbehaving_origin_gives_502_and_the_edge_survives(
        node_factory: NodeFactory, raw_origin: tuple[RawOrigin, int]) -> None:
    origin, port = raw_origin
    node = await node_factory("edge", origin_url=f"http://127.0.0.1:{port}",
                              cdn={"heartbeat_interval": 30.0, "upstream_timeout": 1.0})
    async with httpx.AsyncClient(timeout=10) as c:
        for name, reply in BAD.items():
            origin.reply = reply
            try:
                r = await c.get(node_url(node, f"/{name}.ts"))
            except httpx.HTTPError:
                continue  # the body was cut mid-stream: the client sees a broken response, never a wrong one
            assert r.status_code in (200, 502), name
            if r.status_code == 502:
                assert b"Bad Gateway" in r.content
            else:
                assert r.content != b""  # a prefix was streamed; it must not have been cached:
                origin.reply = BAD["garbage"]
                assert (await c.get(node_url(node, f"/{name}.ts"))).status_code == 502
        origin.silent = True
        r = await c.get(node_url(node, "/silent.ts"))
        assert r.status_code == 504
        assert (await c.get(node_url(node, "/healthz"))).status_code == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=st.binary(max_size=2000))
async def test_upstream_client_fuzz(reply: bytes) -> None:
    origin = RawOrigin()
    origin.reply = reply
    port = await origin.start()
    pool = UpstreamPool(f"http://127.0.0.1:{port}", UpstreamLimits(connect_timeout=1, read_timeout=1))
    try:
        resp = await pool.request("GET", "/x", [])
        await resp.read_all(10_000)
        assert 100 <= resp.status <= 999
    except (NetError, UpstreamError):
        pass
    finally:
        await pool.close()
        await origin.stop()
