"""Whatever bytes arrive, the front door answers with an error or closes, and keeps serving others."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivecast.http import HttpLimits, HttpServer, Request, Response, Router

REQUEST_PIECES = st.sampled_from([
    b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.0\r\n", b"Host: a\r\n", b"Content-Length: 5\r\n",
    b"Content-Length: -1\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n", b"0\r\n\r\n", b"ffffffff\r\n",
    b"Connection: Upgrade\r\nUpgrade: x\r\n", b"\x00", b" ", b"GET /\xff\xfe HTTP/1.1\r\n", b"abcde",
])


async def ok(request: Request) -> Response:
    await request.read_body()
    return Response.text("ok")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(REQUEST_PIECES, st.binary(max_size=64)), max_size=12))
def test_random_bytes_never_break_the_server(chunks: list[bytes]) -> None:
    async def scenario() -> None:
        router = Router()
        router.prefix("/", ok)
        server = HttpServer(router, host="127.0.0.1", port=0,
                            limits=HttpLimits(header_timeout=0.3, idle_timeout=0.3, max_body_bytes=1024))
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for chunk in chunks:
                writer.write(chunk)
            await writer.drain()
            async with asyncio.timeout(3):
                data = await reader.read(65536)
            if data:
                assert data.startswith(b"HTTP/1.1 ")
            writer.close()
            r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
            w2.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            async with asyncio.timeout(3):
                assert (await r2.read()).endswith(b"ok")
            w2.close()
        finally:
            await server.close(grace=0.1)

    asyncio.run(scenario())
