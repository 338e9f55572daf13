"""Forwarding what the edge does not cache (API calls, unsafe methods, WebSocket upgrades) to the
origin untouched, streaming both ways."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from hivecast.cdn.forwarding import downstream_headers, upstream_headers
from hivecast.cdn.upstream import UpstreamPool
from hivecast.http.channel import RawChannel
from hivecast.http.message import Request, Response
from hivecast.net import Connection, ConnectionLimits, NetError, NetTimeout, connect

log = logging.getLogger(__name__)

MAX_UPGRADE_HEAD = 64 * 1024


def _problem(status: int, message: str) -> Response:
    return Response(status, [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"),
                             ("x-cache", "PASS")], f"{status} {message}\n".encode())


class PassThrough:
    def __init__(self, pool: UpstreamPool, *, via: str = "1.1 hivecast", max_body: int = 64 * 1024 * 1024,
                 tunnel_idle: float = 3600.0) -> None:
        self.pool = pool
        self.via = via
        self.max_body = max_body
        self.tunnel_idle = tunnel_idle
        self.tunnels = 0

    async def __call__(self, request: Request) -> Response:
        if request.upgrade:
            return await self._upgrade(request)
        body = await request.read_body(self.max_body)
        try:
            resp = await self.pool.request(request.method, request.target,
                                           upstream_headers(request, for_cache=False, via=self.via), body)
        except NetTimeout:
            return _problem(504, "Gateway Timeout: the origin did not answer in time")
        except NetError as exc:
            return _problem(502, f"Bad Gateway: the origin is unreachable ({exc})")
        headers = downstream_headers(resp.headers)
        headers.append(("x-cache", "PASS"))
        length = resp.content_length
        if length is not None:
            headers.append(("content-length", str(length)))
        if request.method == "HEAD" or resp.status in (204, 304):
            await resp.close()
            return Response(resp.status, headers, b"")
        return Response(resp.status, headers, resp.body)

    async def _upgrade(self, request: Request) -> Response:
        """Replay the upgrade request on a raw connection; on 101, splice the two sockets."""
        pool = self.pool
        try:
            conn = await connect(pool.host, pool.port, timeout=pool.limits.connect_timeout,
                                 limits=ConnectionLimits(connect_timeout=pool.limits.connect_timeout))
        except NetError as exc:
            return _problem(502, f"Bad Gateway: the origin is unreachable ({exc})")
        try:
            lines = [f"{request.method} {pool.prefix}{request.target} HTTP/1.1", f"host: {pool.authority}"]
            lines += [f"{k}: {v}" for k, v in request.headers if k not in ("host", "x-forwarded-for")]
            lines.append(f"x-forwarded-for: {request.client[0]}")
            conn.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await conn.drain()
            head = await conn.readuntil(b"\r\n\r\n", timeout=pool.limits.read_timeout)
        except NetError as exc:
            conn.abort()
            if isinstance(exc, NetTimeout):
                return _problem(504, "Gateway Timeout: the origin did not answer the upgrade")
            return _problem(502, f"Bad Gateway: upgrade failed ({exc})")
        if len(head) > MAX_UPGRADE_HEAD:
            conn.abort()
            return _problem(502, "Bad Gateway: upgrade response head too large")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            conn.abort()
            return _problem(502, "Bad Gateway: malformed upgrade response")
        headers = []
        for line in header_lines:
            if ":" in line:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        if status != 101:
            # Not upgraded: pass the refusal on and close (we did not parse its body framing).
            rest = b""
            with contextlib.suppress(NetError):
                rest = await conn.read(65536, timeout=1.0)
            conn.abort()
            return Response(status, [*downstream_headers(headers), ("connection", "close")], rest)

        async def splice(channel: RawChannel) -> None:
            self.tunnels += 1
            try:
                await _splice(channel, conn, self.tunnel_idle)
            finally:
                self.tunnels -= 1
                await conn.close(timeout=0.5)

        return Response(101, headers, on_upgrade=splice)


async def _splice(channel: RawChannel, conn: Connection, idle: float) -> None:
    async def client_to_origin() -> None:
        while data := await channel.read():
            conn.write(data)
            await conn.drain()

    async def origin_to_client() -> None:
        while data := await conn.read(65536, timeout=idle):
            channel.write(data)
            await channel.drain()

    tasks = [asyncio.ensure_future(client_to_origin()), asyncio.ensure_future(origin_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


def authority_of(url: str) -> str:
    return urlsplit(url).netloc
