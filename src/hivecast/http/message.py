"""Requests and responses as handlers see them. Handlers are `async def handle(request) -> Response`."""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

from hivecast.http.headers import Headers

if TYPE_CHECKING:
    from hivecast.http.channel import RawChannel


class RequestBodyTooLarge(Exception):
    pass


class BodyReader:
    """The request body as it arrives; reading resumes the socket when the buffer drains."""

    __slots__ = ("_chunks", "_complete", "_limit", "_on_drained", "_received", "_size", "_waiter", "discard", "failed")

    def __init__(self, limit: int, on_drained: Callable[[], None]) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._complete = False
        self._size = 0
        self._received = 0
        self._limit = limit
        self._on_drained = on_drained
        self._waiter: asyncio.Future[None] | None = None
        self.discard = False
        self.failed: Exception | None = None

    # -- producer side (the connection) --
    def feed(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit:
            self.failed = RequestBodyTooLarge(f"request body over {self._limit} bytes")
        elif not self.discard:
            self._chunks.append(data)
            self._size += len(data)
        self._wake()

    def finish(self) -> None:
        self._complete = True
        self._wake()

    def abort(self, exc: Exception) -> None:
        self.failed = exc
        self._wake()

    @property
    def buffered(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return self._complete

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- consumer side (the handler) --
    async def chunk(self) -> bytes:
        """Next chunk, b"" at the end of the body."""
        while not self._chunks:
            if self.failed is not None:
                raise self.failed
            if self._complete:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._size -= len(data)
        if not self._chunks:
            self._on_drained()
        return data

    async def read_all(self, max_bytes: int | None = None) -> bytes:
        parts: list[bytes] = []
        total = 0
        while chunk := await self.chunk():
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise RequestBodyTooLarge(f"request body over {max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def start_discarding(self) -> None:
        self.discard = True
        self._chunks.clear()
        self._size = 0
        self._on_drained()


class Request:
    __slots__ = (
        "_query",
        "body",
        "client",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query_string",
        "raw_path",
        "route_prefix",
        "scheme",
        "server",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        *,
        method: str,
        target: str,
        raw_path: str,
        query_string: str,
        headers: Headers,
        http_version: str,
        client: tuple[str, int],
        server: tuple[str, int],
        body: BodyReader,
        keep_alive: bool = True,
        upgrade: bool = False,
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.target = target
        self.raw_path = raw_path
        self.path = unquote(raw_path) if "%" in raw_path else raw_path
        self.query_string = query_string
        self.headers = headers
        self.http_version = http_version
        self.client = client
        self.server = server
        self.body = body
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.scheme = scheme  # "https" when the connection came in over TLS
        self.route_prefix = ""
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    async def read_body(self, max_bytes: int | None = None) -> bytes:
        return await self.body.read_all(max_bytes)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


@dataclass(slots=True)
class FileBody:
    """A byte range of a file on disk, sent with sendfile where the transport allows it."""

    path: os.PathLike[str] | str
    offset: int = 0
    length: int | None = None


UpgradeHandler = Callable[["RawChannel"], Awaitable[None]]
Body = bytes | AsyncIterable[bytes] | FileBody


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    # With status 101: after the head is written, the connection is handed to this coroutine.
    on_upgrade: UpgradeHandler | None = None

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, [("content-type", content_type), *(headers or [])], text.encode())

    @classmethod
    def json(cls, data: object, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        import json

        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json"), *(headers or [])], body)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A complete keep-alive HTTP/1.1 response, head and body already encoded, that a handler's
    synchronous fast path may return when it can reuse the bytes (the edge's hottest hits)."""

    status: int
    data: bytes


async def iterate_body(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        if chunk:
            yield chunk
