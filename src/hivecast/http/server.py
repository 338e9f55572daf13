"""The HTTP server: a listening socket, its connections, their deadlines and counters."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO

from hivecast.http.message import RawResponse, Request, Response
from hivecast.http.protocol import HttpConnection
from hivecast.net.errors import translate_os_error

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
# Optional synchronous fast path a handler may offer as `handler.fast(request)`: a complete
# response with a bytes body, or None to have the request go through `await handler(request)`.
FastHandler = Callable[[Request], Response | RawResponse | None]
Observer = Callable[[Request, int, float], None]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 10_000
    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 64 * 1024 * 1024
    read_buffer: int = 256 * 1024
    write_buffer_high: int = 1024 * 1024
    write_buffer_max: int = 8 * 1024 * 1024
    write_timeout: float = 30.0


class HttpServer:
    def __init__(
        self,
        handler: Handler,
        *,
        host: str,
        port: int,
        limits: HttpLimits | None = None,
        observer: Observer | None = None,
        name: str = "http",
        reuse_port: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.fast_handler: FastHandler | None = getattr(handler, "fast", None)
        self.host = host
        self.requested_port = port
        self.limits = limits or HttpLimits()
        self.name = name
        self._observer = observer
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._connections: set[HttpConnection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = False
        self.connections_rejected = 0
        self.rejected_requests: dict[int, int] = {}
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        # Zero-copy sendfile writes to the socket beneath the transport: never under TLS.
        self._sendfile_ok = tls is None
        self._os_sendfile_ok = tls is None and hasattr(os, "sendfile")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"{self.name} server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: HttpConnection(self),
                self.host,
                self.requested_port,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
                backlog=2048,
                ssl=self.tls,
                # A client that never finishes its handshake (or speaks plain HTTP) is cut off
                # like one that never finishes its request head.
                ssl_handshake_timeout=self.limits.header_timeout if self.tls is not None else None,
            )
        except OSError as exc:
            raise translate_os_error(exc, (self.host, self.requested_port), action=f"{self.name} listen") from None
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self._connections):
                conn.check_deadlines(now)

    # ---- called by connections ----
    def register(self, conn: HttpConnection) -> bool:
        if self.closing or len(self._connections) >= self.limits.max_connections:
            self.connections_rejected += 1
            return False
        self._connections.add(conn)
        return True

    def unregister(self, conn: HttpConnection) -> None:
        self._connections.discard(conn)

    def upgraded(self, conn: HttpConnection) -> None:
        """An upgraded connection leaves our deadlines to the protocol that took it over."""

    def count_rejected(self, status: int) -> None:
        self.rejected_requests[status] = self.rejected_requests.get(status, 0) + 1

    def observe(self, request: Request, status: int, seconds: float) -> None:
        if self._observer is not None:
            self._observer(request, status, seconds)

    async def send_file(self, conn: HttpConnection, fh: IO[bytes], offset: int, length: int) -> None:
        transport = conn.transport
        assert transport is not None
        if self._sendfile_ok:
            try:
                # Let what is queued go first: sendfile writes to the socket directly.
                await conn._drain()
                await asyncio.get_running_loop().sendfile(transport, fh, offset, length, fallback=False)
                return
            except (NotImplementedError, RuntimeError, asyncio.SendfileNotAvailableError):
                # uvloop's transports do not implement loop.sendfile: use os.sendfile ourselves.
                self._sendfile_ok = False
        if self._os_sendfile_ok:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    await _os_sendfile(conn, transport, sock.fileno(), fh.fileno(), offset, length)
                    return
                except _SendfileUnsupported:
                    self._os_sendfile_ok = False
        fd = fh.fileno()
        end = offset + length
        while offset < end:
            chunk = os.pread(fd, min(256 * 1024, end - offset), offset)
            if not chunk:
                raise ConnectionResetError("file shrank while being sent")
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            transport.write(chunk)
            offset += len(chunk)
            await conn._drain()

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, let in-flight requests finish for `grace` seconds, then cut the rest."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        deadline = time.monotonic() + grace
        for conn in list(self._connections):
            if not conn.busy and conn.channel is None and conn.transport is not None:
                conn.transport.close()
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await self._server.wait_closed()
        self._server = None


class _SendfileUnsupported(Exception):
    """os.sendfile cannot be used on this socket or file (nothing was sent)."""


_SENDFILE_CHUNK = 4 * 1024 * 1024


async def _os_sendfile(conn: HttpConnection, transport: asyncio.Transport, sock_fd: int, file_fd: int,
                       offset: int, length: int) -> None:
    """Zero-copy file body: os.sendfile straight to the connection's socket.

    The transport's own buffer must be empty first (the response head goes out before the body);
    when the socket is full we wait for writability on a dup of its descriptor, so the event loop
    does not see a second reader/writer on the transport's own fd."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(conn.write_timeout):
        while transport.get_write_buffer_size() > 0:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            await asyncio.sleep(0.001)
    end = offset + length
    started = offset
    waiter_fd: int | None = None
    try:
        while offset < end:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            try:
                sent = os.sendfile(sock_fd, file_fd, offset, min(_SENDFILE_CHUNK, end - offset))
            except BlockingIOError:
                sent = -1
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ConnectionResetError("client went away") from exc
            except OSError as exc:
                if offset == started and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP):
                    raise _SendfileUnsupported() from exc
                raise
            if sent == 0:
                raise ConnectionResetError("file shrank while being sent")
            if sent > 0:
                offset += sent
                continue
            if waiter_fd is None:
                waiter_fd = os.dup(sock_fd)
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(waiter_fd, _wake, writable)
            try:
                async with asyncio.timeout(conn.write_timeout):
                    await writable
            except TimeoutError:
                raise ConnectionResetError("client did not read within the write timeout") from None
            finally:
                loop.remove_writer(waiter_fd)
    finally:
        if waiter_fd is not None:
            os.close(waiter_fd)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
