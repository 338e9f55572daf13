"""TCP servers and clients over asyncio streams, with limits, deadlines and typed errors.

`Connection` is what protocol adapters (RTSP, RTMP, peer wire) hold: every read waits at most the
idle timeout, every drain at most the write timeout, and the bytes queued for a peer are capped,
so a peer that stops reading is dropped instead of growing our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

from hivecast.net.errors import (
    BufferLimitExceeded,
    ConnectionLimitExceeded,
    ConnectionReset,
    NetError,
    NetTimeout,
    translate_os_error,
)
from hivecast.net.limits import ConnectionLimits

log = logging.getLogger(__name__)

ConnectionHandler = Callable[["Connection"], Awaitable[None]]


class Connection:
    """One TCP connection, read and written with deadlines and bounded buffers."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: ConnectionLimits
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.limits = limits
        peer = writer.get_extra_info("peername")
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        sock = writer.get_extra_info("sockname")
        self.local: tuple[str, int] = (str(sock[0]), int(sock[1])) if sock else ("?", 0)
        transport = writer.transport
        transport.set_write_buffer_limits(high=limits.write_buffer_high)
        self.bytes_read = 0
        self.bytes_written = 0

    @property
    def transport(self) -> asyncio.WriteTransport:
        return self._writer.transport

    @property
    def closing(self) -> bool:
        return self._writer.is_closing()

    async def _deadline(self, aw: Awaitable[bytes], timeout: float | None, what: str) -> bytes:
        try:
            async with asyncio.timeout(self.limits.idle_timeout if timeout is None else timeout):
                data = await aw
        except TimeoutError:
            raise NetTimeout(f"{what}: no data within deadline", address=self.peer) from None
        except asyncio.LimitOverrunError:
            raise BufferLimitExceeded(f"{what}: line longer than the read buffer", address=self.peer) from None
        except asyncio.IncompleteReadError as exc:
            raise ConnectionReset(f"{what}: peer closed after {len(exc.partial)} bytes", address=self.peer) from None
        except OSError as exc:
            raise translate_os_error(exc, self.peer, action=what) from None
        self.bytes_read += len(data)
        return data

    async def read(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        """Up to max_bytes, or b"" at end of stream."""
        return await self._deadline(self._reader.read(max_bytes), timeout, "read")

    async def readexactly(self, n: int, *, timeout: float | None = None) -> bytes:
        if n > self.limits.read_buffer * 64:
            raise BufferLimitExceeded(f"read of {n} bytes is over the limit", address=self.peer)
        return await self._deadline(self._reader.readexactly(n), timeout, "read")

    async def readuntil(self, separator: bytes = b"\n", *, timeout: float | None = None) -> bytes:
        """Bytes up to and including separator; the read buffer size bounds the line."""
        return await self._deadline(self._reader.readuntil(separator), timeout, "read")

    def at_eof(self) -> bool:
        return self._reader.at_eof()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; raises BufferLimitExceeded if the peer is too far behind."""
        if self._writer.is_closing():
            raise ConnectionReset("write on a closed connection", address=self.peer)
        if self.transport.get_write_buffer_size() + len(data) > self.limits.write_buffer_max:
            self.abort()
            raise BufferLimitExceeded("peer reads too slowly: write buffer over the limit", address=self.peer)
        self._writer.write(data)
        self.bytes_written += len(data)

    def writelines(self, chunks: list[bytes]) -> None:
        total = sum(len(c) for c in chunks)
        if self.transport.get_write_buffer_size() + total > self.limits.write_buffer_max:
            self.abort()
            raise BufferLimitExceeded("peer reads too slowly: write buffer over the limit", address=self.peer)
        self._writer.writelines(chunks)
        self.bytes_written += total

    async def drain(self, *, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(self.limits.write_timeout if timeout is None else timeout):
                await self._writer.drain()
        except TimeoutError:
            self.abort()
            raise NetTimeout("write: peer did not read within deadline", address=self.peer) from None
        except OSError as exc:
            raise translate_os_error(exc, self.peer, action="write") from None

    async def send(self, data: bytes) -> None:
        self.write(data)
        await self.drain()

    def abort(self) -> None:
        self.transport.abort()

    async def close(self, *, timeout: float = 1.0) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        if not self.transport.is_closing():
            self.abort()


async def connect(
    host: str, port: int, *, limits: ConnectionLimits | None = None, timeout: float | None = None
) -> Connection:
    """Open a TCP connection; failures come out as typed NetErrors."""
    limits = limits or ConnectionLimits()
    try:
        async with asyncio.timeout(limits.connect_timeout if timeout is None else timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=limits.read_buffer)
    except TimeoutError:
        raise NetTimeout("connect: timed out", address=(host, port)) from None
    except OSError as exc:
        raise translate_os_error(exc, (host, port), action="connect") from None
    return Connection(reader, writer, limits)


class TcpServer:
    """A listening TCP socket that runs one handler task per connection.

    Connections beyond max_connections are closed at once. close() stops accepting, gives
    handlers `grace` seconds to finish, then cancels what is left.
    """

    def __init__(
        self,
        handler: ConnectionHandler,
        *,
        host: str,
        port: int,
        limits: ConnectionLimits | None = None,
        name: str = "tcp",
        reuse_port: bool = False,
    ) -> None:
        self._handler = handler
        self.host = host
        self.requested_port = port
        self.limits = limits or ConnectionLimits()
        self.name = name
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections_rejected = 0
        self.connections_total = 0

    @property
    def active_connections(self) -> int:
        return len(self._tasks)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"{self.name} server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept,
                self.host,
                self.requested_port,
                limit=self.limits.read_buffer,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
        except OSError as exc:
            raise translate_os_error(exc, (self.host, self.requested_port), action=f"{self.name} listen") from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, self.limits)
        if len(self._tasks) >= self.limits.max_connections:
            self.connections_rejected += 1
            log.warning("%s: connection limit %d reached, refusing %s", self.name,
                        self.limits.max_connections, conn.peer)
            conn.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        assert task is not None
        self.connections_total += 1
        self._tasks.add(task)
        try:
            await self._handler(conn)
        except NetError as exc:
            log.debug("%s: %s", self.name, exc)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: handler failed for %s", self.name, conn.peer)
        finally:
            self._tasks.discard(task)
            await conn.close(timeout=0.5)

    async def close(self, *, grace: float = 1.0) -> None:
        if self._server is None:
            return
        self._server.close()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(grace):
                await self._server.wait_closed()
        self._server = None


__all__ = ["Connection", "ConnectionLimitExceeded", "TcpServer", "connect"]
