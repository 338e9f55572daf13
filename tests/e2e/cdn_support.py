"""A scripted origin for the CDN tests: a tiny HTTP server of ours on loopback whose responses
each test sets, and which counts which requests reach it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

from hivecast.http import HttpServer, RawChannel, Request, Response


@dataclass
class Script:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0          # before the head
    chunk: int = 0              # stream the body in chunks of this size (0: one write)
    chunk_delay: float = 0.0
    etag: str | None = None     # answer If-None-Match with 304 when it matches
    not_modified_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ScriptedOrigin:
    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.seen: list[Seen] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.server: HttpServer | None = None
        self.handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        self.clock: Callable[[], float] = time.time  # Date headers follow the test's clock

    def set(self, path: str, **kw: object) -> Script:
        script = Script(**kw)  # type: ignore[arg-type]
        self.scripts[path] = script
        return script

    def count(self, path: str) -> int:
        return self.counts[path]

    async def start(self) -> None:
        self.server = HttpServer(self._handle, host="127.0.0.1", port=0, name="scripted-origin")
        await self.server.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close(grace=0.1)

    async def _handle(self, request: Request) -> Response:
        body = await request.read_body()
        self.seen.append(Seen(request.method, request.target, dict(request.headers), body))
        self.counts[request.target] += 1
        if request.path in self.handlers:
            return await self.handlers[request.path](request)
        if request.upgrade and request.path == "/ws/echo":
            return Response(101, [("upgrade", "echo"), ("connection", "upgrade")], on_upgrade=_echo)
        script = self.scripts.get(request.target) or self.scripts.get(request.path)
        if script is None:
            return Response.text("no script\n", status=404, headers=[("cache-control", "no-store")])
        if script.delay:
            await asyncio.sleep(script.delay)
        date = ("date", formatdate(self.clock(), usegmt=True))
        headers = [*script.headers, date]
        if script.etag is not None:
            headers.append(("etag", script.etag))
            if request.headers.get("if-none-match") == script.etag:
                return Response(304, [("etag", script.etag), date, *script.not_modified_headers])
        if request.method == "POST":
            return Response(script.status, headers, script.body or body)
        if script.chunk:
            headers.append(("content-length", str(len(script.body))))
            return Response(script.status, headers, _chunks(script.body, script.chunk, script.chunk_delay))
        return Response(script.status, headers, script.body)


async def _chunks(data: bytes, size: int, delay: float) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if delay:
            await asyncio.sleep(delay)
        yield data[i:i + size]


async def _echo(channel: RawChannel) -> None:
    while data := await channel.read():
        channel.write(data)
        await channel.drain()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds



@contextlib.asynccontextmanager
async def running_origin() -> AsyncIterator[ScriptedOrigin]:
    o = ScriptedOrigin()
    await o.start()
    try:
        yield o
    finally:
        await o.stop()


async def until(predicate: Callable[[], object], within: float = 10.0, step: float = 0.02) -> None:
    """Wait until predicate() holds; fails the test (TimeoutError) after `within` seconds."""
    async with asyncio.timeout(within):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(step)
