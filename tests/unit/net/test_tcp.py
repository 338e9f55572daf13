"""The TCP layer on real loopback sockets: deadlines, limits, back-pressure, typed errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hivecast.net import (
    AddressInUse,
    BufferLimitExceeded,
    Connection,
    ConnectionLimits,
    ConnectionRefused,
    NameResolutionError,
    NetTimeout,
    TcpServer,
    connect,
)
from tests.conftest import free_port


async def echo(conn: Connection) -> None:
    while data := await conn.read():
        await conn.send(data)


async def start(handler=echo, **limits: float) -> TcpServer:  # type: ignore[no-untyped-def]
    server = TcpServer(handler, host="127.0.0.1", port=0, limits=ConnectionLimits(**limits))  # type: ignore[arg-type]
    await server.start()
    return server


async def test_echo_round_trip() -> None:
    server = await start()
    try:
        conn = await connect("127.0.0.1", server.port)
        await conn.send(b"hello")
        assert await conn.readexactly(5) == b"hello"
        await conn.close()
    finally:
        await server.close()


async def test_silent_peer_is_dropped_after_idle_timeout() -> None:
    closed = asyncio.Event()
    errors: list[Exception] = []

    async def handler(conn: Connection) -> None:
        try:
            await conn.read()
        except NetTimeout as exc:
            errors.append(exc)
            raise
        finally:
            closed.set()

    server = await start(handler, idle_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            await closed.wait()
            assert await reader.read() == b""  # the server closed on us
        assert errors and "no data within deadline" in str(errors[0])
        writer.close()
    finally:
        await server.close()


async def test_connection_limit_refuses_the_extra_peer() -> None:
    server = await start(max_connections=2)
    try:
        a = await connect("127.0.0.1", server.port)
        b = await connect("127.0.0.1", server.port)
        await a.send(b"x")
        assert await a.readexactly(1) == b"x"
        await b.send(b"y")
        assert await b.readexactly(1) == b"y"
        c = await connect("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            assert await c.read() == b""  # closed at once
        assert server.connections_rejected == 1
        # existing peers are unaffected
        await a.send(b"z")
        assert await a.readexactly(1) == b"z"
        for conn in (a, b, c):
            await conn.close()
    finally:
        await server.close()


async def test_refused_is_typed() -> None:
    with pytest.raises(ConnectionRefused, match=r"127\.0\.0\.1"):
        await connect("127.0.0.1", free_port(), timeout=2)


async def test_name_resolution_is_typed() -> None:
    with pytest.raises(NameResolutionError):
        await connect("no-such-host.invalid", 80, timeout=5)


async def test_address_in_use_is_typed() -> None:
    server = await start()
    try:
        other = TcpServer(echo, host="127.0.0.1", port=server.port)
        with pytest.raises(AddressInUse, match=str(server.port)):
            await other.start()
    finally:
        await server.close()


async def test_read_deadline_on_client() -> None:
    async def silent(conn: Connection) -> None:
        await asyncio.sleep(10)

    server = await start(silent)
    try:
        conn = await connect("127.0.0.1", server.port)
        with pytest.raises(NetTimeout):
            await conn.read(timeout=0.2)
        await conn.close()
    finally:
        await server.close(grace=0.1)


async def test_slow_reader_is_bounded_and_dropped() -> None:
    """A peer that never reads makes writes fail once the queued bytes pass the limit."""
    outcome: list[BaseException] = []
    done = asyncio.Event()

    async def flood(conn: Connection) -> None:
        chunk = b"x" * 65536
        try:
            for _ in range(10_000):
                conn.write(chunk)
                await conn.drain()
        except (BufferLimitExceeded, NetTimeout) as exc:
            outcome.append(exc)
        finally:
            done.set()

    server = await start(flood, write_buffer_high=64 * 1024, write_buffer_max=256 * 1024, write_timeout=0.5)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        async with asyncio.timeout(10):
            await done.wait()
        assert outcome, "the flood should have been cut off"
        sock.close()
    finally:
        await server.close()


async def test_close_cancels_stuck_handlers_within_grace() -> None:
    async def stuck(conn: Connection) -> None:
        await asyncio.sleep(60)

    server = await start(stuck)
    conn = await connect("127.0.0.1", server.port)
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await server.close(grace=0.2)
    assert loop.time() - t0 < 2
    await conn.close()


async def test_line_longer_than_buffer_is_an_error() -> None:
    got: list[Exception] = []

    async def lines(conn: Connection) -> None:
        try:
            await conn.readuntil(b"\n")
        except BufferLimitExceeded as exc:
            got.append(exc)

    server = await start(lines, read_buffer=1024)
    try:
        conn = await connect("127.0.0.1", server.port)
        conn.write(b"a" * 5000)
        await conn.drain()
        async with asyncio.timeout(5):
            assert await conn.read() == b""
        assert got
        await conn.close()
    finally:
        await server.close()
