"""The raw byte channel a connection becomes after `101 Switching Protocols`.

Two ways to read: `set_receiver()` pushes bytes straight from the loop into a sans-I/O core
(WebSocket's fast path), or `await read()` pulls them. Reading pauses the socket when more than
`read_limit` bytes wait, and writes are bounded by the connection's write limits.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Protocol

from hivecast.net.errors import BufferLimitExceeded, ConnectionReset, NetTimeout


class _Owner(Protocol):
    transport: asyncio.Transport | None
    peer: tuple[str, int]
    write_buffer_max: int
    write_timeout: float

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    async def wait_writable(self) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...


class _BufferedReader(asyncio.BufferedProtocol):
    """The transport's protocol after `set_buffered_receiver`: reads go to the receiver's buffer, and
    the rest (end of stream, loss, write flow control) to the connection that owned the socket."""

    def __init__(self, owner: _Owner, get_buffer: Callable[[int], memoryview],
                 buffer_updated: Callable[[int], None]) -> None:
        self._owner = owner
        self._get_buffer = get_buffer
        self._buffer_updated = buffer_updated
        # the loop calls the receiver's own methods, without a call through this object in between
        self.get_buffer = get_buffer  # type: ignore[method-assign,assignment]
        self.buffer_updated = buffer_updated  # type: ignore[method-assign,assignment]

    def data_received(self, data: bytes) -> None:  # for a transport that does not read into buffers
        _copy_into(self._get_buffer, self._buffer_updated, data)

    def eof_received(self) -> bool | None:
        return self._owner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._owner.pause_writing()

    def resume_writing(self) -> None:
        self._owner.resume_writing()


def _copy_into(get_buffer: Callable[[int], memoryview], buffer_updated: Callable[[int], None], data: bytes) -> None:
    view = memoryview(data)
    while view:
        buf = get_buffer(len(view))
        n = min(len(buf), len(view))
        if n == 0:
            raise RuntimeError("receiver offered an empty buffer")
        buf[:n] = view[:n]
        del buf
        buffer_updated(n)
        view = view[n:]


class RawChannel:
    def __init__(self, owner: _Owner, initial: bytes, read_limit: int) -> None:
        self._owner = owner
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_eof: Callable[[], None] | None = None
        self._read_limit = read_limit
        self.peer = owner.peer
        if initial:
            self._chunks.append(initial)
            self._buffered = len(initial)

    # -- fed by the connection --
    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self._read_limit:
            self._owner.pause_reading()
        self._wake()

    def eof_received(self) -> None:
        self._eof = True
        if self._on_eof is not None:
            self._on_eof()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- used by the protocol that took over --
    def set_receiver(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        """Push mode: bytes already buffered are delivered first, then every arrival."""
        self._on_data, self._on_eof = on_data, on_eof
        while self._chunks:
            on_data(self._chunks.popleft())
        self._buffered = 0
        self._owner.resume_reading()
        if self._eof:
            on_eof()

    def set_buffered_receiver(self, get_buffer: Callable[[int], memoryview], buffer_updated: Callable[[int], None],
                              on_eof: Callable[[], None]) -> bool:
        """Push mode where the loop reads straight into the receiver's buffer (`asyncio.BufferedProtocol`):
        no bytes object per read. The transport's protocol becomes a stand-in that passes everything
        else on to the connection. False (nothing changed) where the transport cannot switch protocols."""
        t = self._owner.transport
        if t is None or t.is_closing() or self._eof or not hasattr(t, "set_protocol"):
            return False
        self._on_eof = on_eof
        self._on_data = lambda data: _copy_into(get_buffer, buffer_updated, data)
        while self._chunks:  # bytes that came with the upgrade request
            _copy_into(get_buffer, buffer_updated, self._chunks.popleft())
        self._buffered = 0
        t.set_protocol(_BufferedReader(self._owner, get_buffer, buffer_updated))
        self._owner.resume_reading()
        return True

    def pause_reading(self) -> None:
        self._owner.pause_reading()

    def resume_reading(self) -> None:
        self._owner.resume_reading()

    async def read(self) -> bytes:
        """Pull mode: the next bytes, b"" once the peer has closed."""
        while not self._chunks:
            if self._eof or self.closed:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered <= self._read_limit // 2:
            self._owner.resume_reading()
        return data

    @property
    def transport(self) -> asyncio.Transport | None:
        """The socket's transport (None once gone): for write-buffer tuning and fast-path writes."""
        return self._owner.transport

    @property
    def closed(self) -> bool:
        t = self._owner.transport
        return t is None or t.is_closing()

    def write_buffer_size(self) -> int:
        t = self._owner.transport
        return 0 if t is None else t.get_write_buffer_size()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport_for(len(data)).write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        """Several buffers in one go (one `writev` on uvloop): a frame head and its payload need no join."""
        total = 0
        for c in chunks:
            total += len(c)
        self._transport_for(total).writelines(chunks)

    def _transport_for(self, size: int) -> asyncio.Transport:
        """The transport, if it is open and `size` more bytes keep its buffer under the hard limit;
        past the limit the connection is aborted (a slow reader is never buffered without bound)."""
        t = self._owner.transport
        if t is None or t.is_closing():
            raise ConnectionReset("write on a closed connection", address=self.peer)
        if t.get_write_buffer_size() + size > self._owner.write_buffer_max:
            t.abort()
            raise BufferLimitExceeded("peer reads too slowly: write buffer over the limit", address=self.peer)
        return t

    async def drain(self, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(self._owner.write_timeout if timeout is None else timeout):
                await self._owner.wait_writable()
        except TimeoutError:
            self.abort()
            raise NetTimeout("write: peer did not read within deadline", address=self.peer) from None

    def close(self) -> None:
        t = self._owner.transport
        if t is not None and not t.is_closing():
            t.close()
        self._wake()

    def abort(self) -> None:
        t = self._owner.transport
        if t is not None:
            t.abort()
        self._wake()
