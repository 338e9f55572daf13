"""One HTTP/1.1 connection: httptools parses, a worker task answers requests in order.

Why our own front door rather than an ASGI server: media responses go out as zero-copy file
ranges, WebSocket upgrades hand the socket to our own RFC 6455 core, and everything else (the
REST API) is passed to the ASGI app through `hivecast.http.asgi`. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import httptools

from hivecast.http.channel import RawChannel
from hivecast.http.headers import Headers
from hivecast.http.message import BodyReader, FileBody, RawResponse, Request, RequestBodyTooLarge, Response
from hivecast.net.errors import NetError

if TYPE_CHECKING:
    from hivecast.http.server import HttpServer

log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_MAX_PIPELINED = 32
_FILE_CHUNK = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})

_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def error_response(status: int, message: str) -> Response:
    return Response(status, [("content-type", "text/plain; charset=utf-8"), ("connection", "close")],
                    f"{status} {HTTPStatus(status).phrase}: {message}\n".encode())


def encode_head(status: int, headers: list[tuple[str, str]], content_length: int | None,
                version: str, *, chunked: bool = False, close: bool = False) -> bytes:
    """A response head as the front door writes it (framing fields are ours, not the handler's)."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
    has_date = has_server = False
    for name, value in headers:
        lname = name.lower()
        if lname in ("content-length", "transfer-encoding", "connection"):
            continue
        has_date = has_date or lname == "date"
        has_server = has_server or lname == "server"
        parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    if not has_server:
        parts.append(b"server: hivecast\r\n")
    if not has_date:
        parts.append(b"date: %s\r\n" % http_date())
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif content_length is not None:
        parts.append(b"content-length: %d\r\n" % content_length)
    if close:
        parts.append(b"connection: close\r\n")
    elif version == "1.0":
        parts.append(b"connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Incoming:
    __slots__ = ("header_bytes", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        limits = server.limits
        self.write_buffer_max = limits.write_buffer_max
        self.write_timeout = limits.write_timeout
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("?", 0)
        self.local: tuple[str, int] = ("?", 0)
        self._parser = httptools.HttpRequestParser(self)
        self._incoming: _Incoming | None = None
        self._current_body: BodyReader | None = None
        self._queue: collections.deque[Request] = collections.deque()
        self._queue_waiter: asyncio.Future[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        self._closed = False
        self._upgrade_data: bytes | None = None
        self.channel: RawChannel | None = None
        self.last_activity = time.monotonic()
        self.head_started: float | None = None
        self.busy = False
        self.requests_served = 0
        self._fast = server.fast_handler
        self._fast_pending: Request | None = None

    # ---- asyncio.Protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        transport = self.transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        local = transport.get_extra_info("sockname")
        self.local = (str(local[0]), int(local[1])) if local else ("?", 0)
        if not self.server.register(self):
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        limits = self.server.limits
        transport.set_write_buffer_limits(high=limits.write_buffer_high)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.unregister(self)
        self._writable.set()
        if self._current_body is not None and not self._current_body.complete:
            self._current_body.abort(ConnectionError("client disconnected"))
        for req in self._queue:
            if not req.body.complete:
                req.body.abort(ConnectionError("client disconnected"))
        if self.channel is not None:
            self.channel.eof_received()
        if self._queue_waiter is not None and not self._queue_waiter.done():
            self._queue_waiter.set_result(None)

    def eof_received(self) -> bool | None:
        if self.channel is not None:
            self.channel.eof_received()
            # Keep the write side open: the upgraded protocol closes it. A TLS transport cannot
            # half-close (and warns when asked to), so there the connection just ends.
            return self.server.tls is None
        return None

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def wait_writable(self) -> None:
        if self._closed:
            raise ConnectionResetError("connection closed")
        await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("connection closed")

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self._closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.channel is not None:
            self.channel.data_received(data)
            return
        if self._upgrade_data is not None:
            self._upgrade_data += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._upgrade_data = data[offset:]
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raised; the original tells us which limit was hit.
            cause = exc.__context__
            if isinstance(cause, _HeadTooLarge):
                self._reject(431, str(cause))
            elif isinstance(cause, _BadTarget):
                self._reject(400, str(cause))
            else:
                self._reject(400, "malformed request")

    # ---- httptools callbacks ----
    def on_message_begin(self) -> None:
        self._incoming = _Incoming()
        self.head_started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        inc = self._incoming
        assert inc is not None
        inc.url += url
        inc.header_bytes += len(url)
        if inc.header_bytes > self.server.limits.max_header_bytes:
            raise _HeadTooLarge("request line and headers too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        inc = self._incoming
        assert inc is not None
        inc.header_bytes += len(name) + len(value) + 4
        limits = self.server.limits
        if inc.header_bytes > limits.max_header_bytes:
            raise _HeadTooLarge("request headers too large")
        if len(inc.headers) >= limits.max_headers:
            raise _HeadTooLarge(f"more than {limits.max_headers} header fields")
        inc.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        inc = self._incoming
        assert inc is not None
        self.head_started = None
        parser = self._parser
        try:
            url = httptools.parse_url(inc.url)
        except httptools.HttpParserInvalidURLError:
            raise _BadTarget("invalid request target") from None
        body = BodyReader(self.server.limits.max_body_bytes, self._body_drained)
        self._current_body = body
        request = Request(
            method=parser.get_method().decode("ascii"),
            target=inc.url.decode("latin-1"),
            raw_path=(url.path or b"/").decode("latin-1"),
            query_string=(url.query or b"").decode("latin-1"),
            headers=Headers.from_lower(inc.headers),
            http_version=parser.get_http_version(),
            client=self.peer,
            server=self.local,
            body=body,
            keep_alive=parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
            scheme=self.server.scheme,
        )
        self._incoming = None
        if (self._fast is not None and not self._queue and not self.busy and request.keep_alive
                and not request.upgrade and request.method in ("GET", "HEAD") and self._writable.is_set()
                and "content-length" not in request.headers and "transfer-encoding" not in request.headers):
            # Candidate for the synchronous fast path, decided once the message is complete.
            self._fast_pending = request
            return
        self._enqueue(request)

    def _enqueue(self, request: Request) -> None:
        self._queue.append(request)
        if len(self._queue) > _MAX_PIPELINED:
            self.pause_reading()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif self._queue_waiter is not None and not self._queue_waiter.done():
            self._queue_waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        body = self._current_body
        if body is None:
            return
        body.feed(data)
        if body.buffered > self.server.limits.read_buffer:
            self.pause_reading()

    def on_message_complete(self) -> None:
        if self._current_body is not None:
            self._current_body.finish()
            self._current_body = None
        request = self._fast_pending
        if request is not None:
            self._fast_pending = None
            if not self._answer_fast(request):
                self._enqueue(request)

    def _answer_fast(self, request: Request) -> bool:
        """Answer a bodiless GET/HEAD without a task switch when the handler can do it
        synchronously (a fresh in-memory cache hit); False to take the normal path."""
        fast = self._fast
        transport = self.transport
        if fast is None or transport is None or transport.is_closing() or self.server.closing:
            return False
        started = time.monotonic()
        try:
            response = fast(request)
        except Exception:
            log.exception("fast handler failed for %s", request)
            return False
        if response is None:
            return False
        if isinstance(response, RawResponse):
            transport.write(response.data)
            self.requests_served += 1
            self.last_activity = time.monotonic()
            self.server.observe(request, response.status, self.last_activity - started)
            return True
        body = response.body
        if not isinstance(body, bytes) or response.status == 101 or \
                (response.header("connection") or "").lower() == "close":
            return False
        head_only = request.method == "HEAD" or response.status in _NO_BODY_STATUSES
        declared = response.header("content-length")
        length = int(declared) if head_only and declared is not None else len(body)
        transport.write(self._head(response.status, response.headers,
                                   None if response.status in _NO_BODY_STATUSES else length,
                                   request.http_version) + (b"" if head_only else body))
        self.requests_served += 1
        self.last_activity = time.monotonic()
        self.server.observe(request, response.status, self.last_activity - started)
        return True

    def _body_drained(self) -> None:
        if len(self._queue) <= _MAX_PIPELINED:
            self.resume_reading()

    # ---- answering ----
    def _reject(self, status: int, message: str) -> None:
        """Answer a request we could not parse, then close: the byte stream is no longer trustworthy."""
        self.server.count_rejected(status)
        if self.transport is None or self.transport.is_closing():
            return
        body = f"{status} {HTTPStatus(status).phrase}: {message}\n".encode()
        headers = [("content-type", "text/plain; charset=utf-8")]
        self.transport.write(self._head(status, headers, len(body), "1.1", close=True) + body)
        self.transport.close()

    def check_deadlines(self, now: float) -> None:
        """Called by the server's sweeper about once a second."""
        if self._closed or self.channel is not None or self.transport is None:
            return
        limits = self.server.limits
        if self.head_started is not None and now - self.head_started > limits.header_timeout:
            self._reject(408, "request head not received in time")
        elif not self.busy and not self._queue and now - self.last_activity > limits.idle_timeout:
            self.transport.close()

    async def _next_request(self) -> Request | None:
        while not self._queue:
            if self._closed:
                return None
            self._queue_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._queue_waiter
            finally:
                self._queue_waiter = None
        return self._queue.popleft()

    async def _work(self) -> None:
        handler = self.server.handler
        try:
            while (request := await self._next_request()) is not None:
                self.busy = True
                started = time.monotonic()
                try:
                    response = await handler(request)
                except RequestBodyTooLarge as exc:
                    response = error_response(413, str(exc))
                except NetError as exc:
                    log.debug("handler network error for %s: %s", request, exc)
                    response = error_response(502, "upstream failure")
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = error_response(500, "internal error")
                keep_going = await self._send(request, response)
                self.requests_served += 1
                self.server.observe(request, response.status, time.monotonic() - started)
                self.busy = False
                self.last_activity = time.monotonic()
                if not keep_going:
                    return
                if len(self._queue) <= _MAX_PIPELINED:
                    self.resume_reading()
        except (ConnectionError, NetError, asyncio.CancelledError):
            if self.transport is not None:
                self.transport.abort()
        except Exception:
            log.exception("connection worker failed")
            if self.transport is not None:
                self.transport.abort()
        finally:
            self._worker = None
            if self.channel is None and self.transport is not None and not self._closed and not self._queue:
                # the worker only stops for good when the connection must close
                self.transport.close()

    def _head(self, status: int, headers: list[tuple[str, str]], content_length: int | None,
              version: str, *, chunked: bool = False, close: bool = False) -> bytes:
        return encode_head(status, headers, content_length, version, chunked=chunked, close=close)

    async def _send(self, request: Request, response: Response) -> bool:
        """Write the response; True if the connection stays open for the next request."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        status = response.status
        if status == 101 and response.on_upgrade is not None:
            return await self._switch_protocols(request, response)
        close = (
            not request.keep_alive
            or request.upgrade
            or (response.header("connection") or "").lower() == "close"
            or self.server.closing
        )
        body = response.body
        head_only = request.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
        declared = response.header("content-length")
        if isinstance(body, (bytes, bytearray, memoryview)):
            length = int(declared) if head_only and declared is not None else len(body)
            transport.write(self._head(status, response.headers, None if status in _NO_BODY_STATUSES else length,
                                       request.http_version, close=close)
                            + (b"" if head_only else bytes(body)))
        elif isinstance(body, FileBody):
            await self._send_file(request, response, body, head_only, close)
        else:
            await self._send_stream(request, response, body, head_only, close,
                                    int(declared) if declared is not None else None)
        if not close and not request.body.complete:
            if request.body.failed is not None:
                close = True
            else:
                request.body.start_discarding()
        if close:
            transport.close()
            return False
        if transport.get_write_buffer_size() > 0:
            await self._drain()
        return True

    async def _drain(self) -> None:
        if self._writable.is_set():
            return
        try:
            async with asyncio.timeout(self.write_timeout):
                await self.wait_writable()
        except TimeoutError:
            raise ConnectionResetError("client did not read within the write timeout") from None

    async def _send_file(self, request: Request, response: Response, body: FileBody,
                         head_only: bool, close: bool) -> None:
        transport = self.transport
        assert transport is not None
        with open(body.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            length = body.length if body.length is not None else max(0, size - body.offset)
            transport.write(self._head(response.status, response.headers, length, request.http_version, close=close))
            if head_only or length == 0:
                return
            await self.server.send_file(self, fh, body.offset, length)

    async def _send_stream(self, request: Request, response: Response, body: AsyncIterable[bytes],
                           head_only: bool, close: bool, declared: int | None) -> None:
        transport = self.transport
        assert transport is not None
        chunked = declared is None and not head_only and request.http_version != "1.0"
        if declared is None and not chunked and not head_only:
            close = True  # HTTP/1.0 without a length: the end of the body is the end of the connection
        transport.write(self._head(response.status, response.headers, declared, request.http_version,
                                   chunked=chunked, close=close))
        try:
            async for chunk in body:
                if head_only or not chunk:
                    continue
                if self._closed:
                    raise ConnectionResetError("client went away")
                if chunked:
                    transport.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                else:
                    transport.write(chunk)
                await self._drain()
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if chunked and not self._closed:
            transport.write(b"0\r\n\r\n")

    async def _switch_protocols(self, request: Request, response: Response) -> bool:
        transport = self.transport
        assert transport is not None and response.on_upgrade is not None
        parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        parts.extend(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        parts.append(b"\r\n")
        transport.write(b"".join(parts))
        self.channel = RawChannel(self, self._upgrade_data or b"", self.server.limits.read_buffer)
        self._upgrade_data = None
        self.server.upgraded(self)
        try:
            await response.on_upgrade(self.channel)
        finally:
            if not transport.is_closing():
                transport.close()
        return False


class _HeadTooLarge(Exception):
    pass


class _BadTarget(Exception):
    pass
