"""The front-door changes the edge relies on: the synchronous fast path keeps responses in
order with pipelining, heads over the limits get 431, and file bodies go out zero-copy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hivecast.http import FileBody, HttpLimits, HttpServer, Request, Response


class Handler:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.fast_calls = 0

    def fast(self, request: Request) -> Response | None:
        if request.path.startswith("/fast"):
            self.fast_calls += 1
            return Response(200, [("x-path", request.path)], request.path.encode())
        return None

    async def __call__(self, request: Request) -> Response:
        if request.path.startswith("/slow"):
            await asyncio.sleep(0.05)
        if request.path.startswith("/file"):
            return Response(200, [], FileBody(self.root / "blob"))
        return Response(200, [("x-path", request.path)], request.path.encode())


async def exchange(port: int, data: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    async with asyncio.timeout(10):
        while until not in out:
            chunk = await reader.read(65536)
            if not chunk:
                break
            out += chunk
    writer.close()
    return out


async def test_pipelined_fast_and_slow_requests_answer_in_order(tmp_path: Path) -> None:
    handler = Handler(tmp_path)
    server = HttpServer(handler, host="127.0.0.1", port=0)
    await server.start()
    try:
        req = b"".join(b"GET /%s%d HTTP/1.1\r\nHost: x\r\n\r\n" % (kind, i)
                       for i, kind in enumerate([b"slow", b"fast", b"fast", b"slow", b"fast"]))
        out = await exchange(server.port, req, b"/fast4")
        order = [line.split(b": ")[1] for line in out.split(b"\r\n") if line.startswith(b"x-path")]
        assert order == [b"/slow0", b"/fast1", b"/fast2", b"/slow3", b"/fast4"]
        # an idle keep-alive connection takes the fast path
        out = await exchange(server.port, b"GET /fast9 HTTP/1.1\r\nHost: x\r\n\r\n", b"/fast9")
        assert out.startswith(b"HTTP/1.1 200") and handler.fast_calls >= 1
    finally:
        await server.close(grace=0.1)


async def test_head_over_limits_gets_431(tmp_path: Path) -> None:
    server = HttpServer(Handler(tmp_path), host="127.0.0.1", port=0, limits=HttpLimits(max_headers=10))
    await server.start()
    try:
        many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(20)) + b"\r\n"
        assert (await exchange(server.port, many, b"\r\n\r\n")).startswith(b"HTTP/1.1 431")
    finally:
        await server.close(grace=0.1)


async def test_file_bodies_use_os_sendfile_on_uvloop(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 8192
    (tmp_path / "blob").write_bytes(blob)
    server = HttpServer(Handler(tmp_path), host="127.0.0.1", port=0)
    await server.start()
    try:
        req = b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(req)
        async with asyncio.timeout(10):
            out = await reader.read()
        writer.close()
        parts = out.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert len(parts) == 3
        assert all(p.split(b"\r\n\r\n", 1)[1] == blob for p in parts)
        assert server._os_sendfile_ok and not server._sendfile_ok  # uvloop: our os.sendfile path
    finally:
        await server.close(grace=0.1)
