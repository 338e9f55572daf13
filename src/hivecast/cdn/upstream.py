"""The upstream HTTP/1.1 client: httptools' response parser over `hivecast.net.connect`, with a
keep-alive connection pool and deadlines for connect, first byte and each read.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from hivecast.net import Connection, ConnectionLimits, ConnectionReset, NetError, connect

log = logging.getLogger(__name__)


class UpstreamError(NetError):
    """The upstream answered with something that is not HTTP we accept."""


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    connect_timeout: float = 3.0
    read_timeout: float = 10.0        # first byte of the response head, and any gap in the body
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    max_idle_per_host: int = 64
    read_size: int = 256 * 1024


class _Parse:
    """httptools callbacks for one response."""

    def __init__(self, limits: UpstreamLimits) -> None:
        self.limits = limits
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.headers_done = False
        self.complete = False
        self.chunks: deque[bytes] = deque()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.limits.max_header_bytes or len(self.headers) >= self.limits.max_headers:
            raise UpstreamError("upstream response head too large")
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def finished(self) -> bool:
        # A method, not the attribute, so type narrowing does not outlive parser callbacks.
        return self.complete


class UpstreamResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: AsyncIterator[bytes],
                 closer: _Closer | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self._closer = closer

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is not None and value.strip().isdigit():
            return int(value)
        return None

    async def read_all(self, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        parts: list[bytes] = []
        total = 0
        async for chunk in self.body:
            total += len(chunk)
            if total > max_bytes:
                await self.close()
                raise UpstreamError(f"upstream body over {max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def close(self) -> None:
        """Abandon the body (the connection is not reused)."""
        if self._closer is not None:
            await self._closer.close()
        else:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()


class _Closer:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.released = False

    async def close(self) -> None:
        if not self.released:
            self.released = True
            self.conn.abort()


class UpstreamPool:
    """Requests to one upstream (scheme http, host, port) over pooled keep-alive connections."""

    def __init__(self, base_url: str, limits: UpstreamLimits | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"upstream {base_url!r}: only http:// upstreams are supported")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.authority = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.limits = limits or UpstreamLimits()
        self._idle: deque[Connection] = deque()
        self.requests = 0
        self.connections_opened = 0
        self.bytes_in = 0

    async def _open(self) -> Connection:
        self.connections_opened += 1
        return await connect(self.host, self.port, timeout=self.limits.connect_timeout,
                             limits=ConnectionLimits(read_buffer=self.limits.read_size,
                                                     connect_timeout=self.limits.connect_timeout))

    def _take_idle(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closing and not conn.at_eof():
                return conn
            conn.abort()
        return None

    def _release(self, conn: Connection) -> None:
        if len(self._idle) < self.limits.max_idle_per_host and not conn.closing:
            self._idle.append(conn)
        else:
            conn.abort()

    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> UpstreamResponse:
        """Send a request; returns once the response head has arrived. Raises NetError subclasses:
        ConnectionRefused (origin down), NetTimeout (slow origin), UpstreamError (bad response)."""
        head = self._encode(method, target, headers, body)
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, method, head, body)
            except (ConnectionReset, _StaleConnection):
                conn.abort()  # the idle connection was closed by the upstream: retry on a new one
        conn = await self._open()
        try:
            return await self._exchange(conn, method, head, body)
        except _StaleConnection:
            conn.abort()
            raise ConnectionReset("upstream closed the connection before answering",
                                  address=(self.host, self.port)) from None

    def _encode(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {self.prefix}{target} HTTP/1.1", f"host: {self.authority}"]
        for k, v in headers:
            if k.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            lines.append(f"{k}: {v}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _exchange(self, conn: Connection, method: str, head: bytes, body: bytes) -> UpstreamResponse:
        self.requests += 1
        try:
            conn.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.write(body)
            await conn.drain(timeout=self.limits.read_timeout)
        except ConnectionReset:
            raise _StaleConnection() from None
        state = _Parse(self.limits)
        parser = httptools.HttpResponseParser(state)
        first = True
        while not state.headers_done:
            data = await conn.read(self.limits.read_size, timeout=self.limits.read_timeout)
            if not data:
                if first:
                    raise _StaleConnection()
                raise ConnectionReset("upstream closed mid-response", address=(self.host, self.port))
            first = False
            self.bytes_in += len(data)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                break
            except httptools.HttpParserError as exc:
                conn.abort()
                raise UpstreamError(f"malformed upstream response: {exc}", address=(self.host, self.port)) from None
        status = parser.get_status_code()
        closer = _Closer(conn)
        head_only = method == "HEAD" or status in (204, 304) or 100 <= status < 200

        if head_only:
            # HEAD/304/204 answers carry no body (HEAD's Content-Length would make the parser
            # wait for one): reuse the connection only if the parser saw the message end.
            closer.released = True
            if state.complete and parser.should_keep_alive():
                self._release(conn)
            else:
                conn.abort()

        async def body_iter() -> AsyncIterator[bytes]:
            if head_only:
                return
            try:
                while True:
                    while state.chunks:
                        yield state.chunks.popleft()
                    if state.complete:
                        break
                    data = await conn.read(self.limits.read_size, timeout=self.limits.read_timeout)
                    if not data:
                        # A body delimited by close ends here; a declared length cut short is an error.
                        try:
                            parser.feed_data(b"")
                        except httptools.HttpParserError:
                            pass
                        if not state.finished():
                            raise ConnectionReset("upstream closed before the end of the body",
                                                  address=(self.host, self.port))
                        while state.chunks:
                            yield state.chunks.popleft()
                        closer.released = True
                        conn.abort()
                        return
                    self.bytes_in += len(data)
                    try:
                        parser.feed_data(data)
                    except httptools.HttpParserError as exc:
                        raise UpstreamError(f"malformed upstream body: {exc}") from None
                if parser.should_keep_alive():
                    closer.released = True
                    self._release(conn)
            finally:
                if not closer.released:
                    closer.released = True
                    conn.abort()

        return UpstreamResponse(status, state.headers, body_iter(), closer)

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().abort()


class _StaleConnection(Exception):
    """A pooled connection was closed by the upstream before it answered."""


__all__ = ["UpstreamError", "UpstreamLimits", "UpstreamPool", "UpstreamResponse"]
