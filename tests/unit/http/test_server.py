"""The front door on real loopback sockets: parsing, limits, keep-alive, streaming, files, upgrades."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hivecast.http import (
    FileBody,
    HttpLimits,
    HttpServer,
    RawChannel,
    Request,
    Response,
    Router,
    StaticFiles,
)


async def hello(request: Request) -> Response:
    return Response.text("hello")


async def echo_body(request: Request) -> Response:
    body = await request.read_body()
    return Response(200, [("content-type", "application/octet-stream")], body)


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"chunk%d;" % i

    return Response(200, [("content-type", "text/plain")], chunks())


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def upgrade(request: Request) -> Response:
    async def run(channel: RawChannel) -> None:
        while data := await channel.read():
            channel.write(data.upper())
            await channel.drain()

    return Response(101, [("upgrade", "shout"), ("connection", "Upgrade")], on_upgrade=run)


def make_router(tmp_path: Path) -> Router:
    router = Router()
    router.exact("/hello", hello)
    router.exact("/echo", echo_body)
    router.exact("/stream", stream)
    router.exact("/boom", boom)
    router.exact("/upgrade", upgrade)
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    (files / "seg.ts").write_bytes(bytes(range(256)) * 40)
    (files / "index.m3u8").write_text("#EXTM3U\n")
    router.prefix("/files/", StaticFiles(files))
    return router


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    srv = HttpServer(make_router(tmp_path), host="127.0.0.1", port=0,
                     limits=HttpLimits(header_timeout=0.5, idle_timeout=1.0, max_body_bytes=10_000,
                                       max_header_bytes=4096, max_headers=20, max_connections=50))
    await srv.start()
    yield srv
    await srv.close(grace=0.2)


def url(server: HttpServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def raw(server: HttpServer, data: bytes, *, read_timeout: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(read_timeout):
            return await reader.read()
    finally:
        writer.close()


async def test_get_and_keep_alive(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            r = await client.get(url(server, "/hello"))
            assert r.status_code == 200
            assert r.text == "hello"
            assert r.headers["server"] == "hivecast"
            assert "date" in r.headers
    assert server.active_connections <= 1


async def test_pipelined_requests_answer_in_order(server: HttpServer) -> None:
    req = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    data = await raw(server, req * 3 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.rindex(b"404 Not Found") > data.rindex(b"200 OK")


async def test_head_has_length_but_no_body(server: HttpServer) -> None:
    data = await raw(server, b"HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 5" in head
    assert body == b""


async def test_request_body_plain_and_chunked(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(url(server, "/echo"), content=b"abc" * 100)
        assert r.content == b"abc" * 100

        async def gen() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"0123456789"

        r = await client.post(url(server, "/echo"), content=gen())
        assert r.content == b"0123456789" * 10


async def test_body_over_limit_is_413(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(url(server, "/echo"), content=b"x" * 20_000)
    assert r.status_code == 413


async def test_streamed_response_is_chunked(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(url(server, "/stream"))
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.text == "".join(f"chunk{i};" for i in range(5))


async def test_handler_error_is_500_without_internals(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(url(server, "/boom"))
        assert r.status_code == 500
        assert "secret" not in r.text
        assert "Traceback" not in r.text


async def test_malformed_request_is_400(server: HttpServer) -> None:
    data = await raw(server, b"GARBAGE\x00\x01 nonsense\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")


async def test_huge_headers_are_431(server: HttpServer) -> None:
    data = await raw(server, b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431")


async def test_header_flood_is_431(server: HttpServer) -> None:
    flood = b"".join(b"X-H%d: v\r\n" % i for i in range(50))
    data = await raw(server, b"GET /hello HTTP/1.1\r\n" + flood + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431")


async def test_slowloris_is_cut_while_others_are_served(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
    await writer.drain()
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(server, "/hello"))).status_code == 200
    async with asyncio.timeout(5):
        data = await reader.read()
    assert data.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_idle_keep_alive_connection_is_closed(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        await reader.readuntil(b"hello")
        assert await reader.read() == b""  # closed after idle_timeout
    writer.close()


async def test_connection_limit(tmp_path: Path) -> None:
    srv = HttpServer(make_router(tmp_path), host="127.0.0.1", port=0, limits=HttpLimits(max_connections=2))
    await srv.start()
    try:
        conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        assert srv.connections_rejected == 1
        for _, w in [*conns, (reader, writer)]:
            w.close()
    finally:
        await srv.close(grace=0.1)


async def test_static_file_range_and_validators(server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        full = await client.get(url(server, "/files/seg.ts"))
        assert full.status_code == 200
        assert full.headers["content-type"] == "video/mp2t"
        assert len(full.content) == 10240
        etag = full.headers["etag"]
        r = await client.get(url(server, "/files/seg.ts"), headers={"range": "bytes=10-19"})
        assert r.status_code == 206
        assert r.content == full.content[10:20]
        assert r.headers["content-range"] == "bytes 10-19/10240"
        r = await client.get(url(server, "/files/seg.ts"), headers={"range": "bytes=-5"})
        assert r.content == full.content[-5:]
        r = await client.get(url(server, "/files/seg.ts"), headers={"range": "bytes=99999-"})
        assert r.status_code == 416
        r = await client.get(url(server, "/files/seg.ts"), headers={"if-none-match": etag})
        assert r.status_code == 304
        assert r.content == b""
        r = await client.get(url(server, "/files/seg.ts"),
                             headers={"if-modified-since": full.headers["last-modified"]})
        assert r.status_code == 304
        r = await client.get(url(server, "/files/index.m3u8"))
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert r.headers["cache-control"] == "public, max-age=1"
        assert (await client.get(url(server, "/files/missing.ts"))).status_code == 404
        assert (await client.post(url(server, "/files/seg.ts"))).status_code == 405


@pytest.mark.parametrize("target", [b"/files/../conftest.py", b"/files/%2e%2e/%2e%2e/etc/passwd",
                                    b"/files/..%2fx", b"/files/a%00b"])
async def test_path_traversal_is_refused(server: HttpServer, target: bytes) -> None:
    data = await raw(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 404)


async def test_upgrade_hands_over_the_socket(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\nearly")
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert await reader.readexactly(5) == b"EARLY"
        writer.write(b"more bytes")
        await writer.drain()
        assert await reader.readexactly(10) == b"MORE BYTES"
    writer.close()


async def test_file_body_with_offset(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789" * 100_000)

    async def part(request: Request) -> Response:
        return Response(200, [], FileBody(path, 5, 500_000))

    router = Router()
    router.exact("/part", part)
    srv = HttpServer(router, host="127.0.0.1", port=0)
    await srv.start()
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{srv.port}/part")
        assert r.content == path.read_bytes()[5:500_005]
    finally:
        await srv.close(grace=0.1)
