"""The asyncio adapter around `WebSocketProtocol`, shared by our server and client.

Bytes arrive pushed from the loop (`RawChannel.set_receiver`), go straight into the sans-I/O core,
and what the core wants written is written at once. The adapter owns what the core cannot:
buffering with bounds (a reader that lets `max_queue` messages pile up pauses the socket; a peer
that lets `write_limit` bytes pile up on our side is dropped as a slow reader), keepalive pings,
idle timeouts and the closing deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hivecast.net.errors import NetTimeout
from hivecast.ws.deflate import DeflateParams
from hivecast.ws.errors import ConnectionClosed
from hivecast.ws.protocol import Closed, Message, Pong, Side, State, WebSocketProtocol

log = logging.getLogger(__name__)
_OPEN, _CLOSED = State.OPEN, State.CLOSED  # module constants: see protocol.py

_PIECE = 256 * 1024  # frames bigger than this are written in pieces of this size by send()


class Channel(Protocol):
    """What the adapter needs from a byte transport; `hivecast.http.RawChannel` provides it."""

    @property
    def transport(self) -> asyncio.Transport | None: ...
    def set_receiver(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None: ...
    # optional: def set_buffered_receiver(get_buffer, buffer_updated, on_eof) -> bool (see RawChannel)
    def write(self, data: bytes | bytearray | memoryview) -> None: ...
    def writelines(self, chunks: list[bytes]) -> None: ...
    def write_buffer_size(self) -> int: ...
    async def drain(self, timeout: float | None = None) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Options:
    """Per-connection bounds and timers (the `[ws]` settings section maps onto this)."""

    max_message_size: int = 16 * 1024 * 1024
    max_queue: int = 64  # received messages not yet taken by recv() before reading pauses
    max_queue_bytes: int = 8 * 1024 * 1024  # ... or that many bytes of them
    write_limit: int = 4 * 1024 * 1024  # send_nowait/broadcast: bytes queued for the peer before it is dropped
    write_high: int = 256 * 1024  # send() waits for the peer above this ...
    write_timeout: float = 30.0  # ... at most this long before the peer is dropped as a slow reader
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    idle_timeout: float | None = None  # no message either way for this long: close 1001
    close_timeout: float = 5.0
    compress_min_size: int = 64
    compress_level: int = 1
    enable_deflate: bool = True


class WebSocket:
    """One open WebSocket connection. `await recv()`, `await send()`, `async for message in ws`."""

    def __init__(self, channel: Channel, protocol: WebSocketProtocol, options: Options, *,
                 path: str = "/", query: dict[str, str] | None = None, headers: Any = None,
                 subprotocol: str | None = None, peer: tuple[str, int] = ("?", 0)) -> None:
        self.channel = channel
        self.protocol = protocol
        self.options = options
        self.path = path
        self.query = query or {}
        self.headers = headers
        self.subprotocol = subprotocol
        self.peer = peer
        self.deflate: DeflateParams | None = protocol.deflate
        self.is_client = protocol.side is Side.CLIENT
        self._queue: collections.deque[str | bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        # Taken once: on Python 3.11 every get_running_loop() is a getpid() system call.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False
        self._queued_bytes = 0
        self._closed = asyncio.Event()
        self._ended = False  # _closed is set: a plain attribute for the broadcast loop
        self.close_code: int | None = None
        self.close_reason = ""
        self.dropped_slow = False
        now = time.monotonic()
        self.last_received = now
        self.last_activity = now
        self._ping_sent_at: float | None = None
        self._ping_waiters: list[asyncio.Future[None]] = []
        self._abort_handle: asyncio.TimerHandle | None = None
        # While send() streams a large frame in pieces nothing else may be written (the pieces would
        # interleave): other writes wait in _deferred and follow the frame.
        self._writing_large = False
        self._deferred: list[bytes] = []
        self._large_lock = asyncio.Lock()
        self.state: dict[str, Any] = {}  # free for the application (user, room, ...)
        # The transport under the channel, for the broadcast fast path.
        self._transport: asyncio.WriteTransport | None = channel.transport

    # ---- wiring ----
    def start(self) -> None:
        # The loop reads straight into the core's buffers where the channel can hand the socket over so
        # (no bytes object per read); else bytes are pushed as they come.
        set_buffered = getattr(self.channel, "set_buffered_receiver", None)
        if set_buffered is not None and set_buffered(self.protocol.get_buffer, self._on_read, self._on_eof):
            return
        self.channel.set_receiver(self._on_data, self._on_eof)

    def _on_read(self, nbytes: int) -> None:
        self.protocol.buffer_updated(nbytes)
        self._received()

    def _on_data(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._received()

    def _received(self) -> None:
        proto = self.protocol
        self.last_received = time.monotonic()
        out = proto.data_to_send()
        if out:
            self._write(out)
        for ev in proto.events_received():
            if type(ev) is Message:
                self._queue.append(ev.data)
                self._queued_bytes += len(ev.data)
                self.last_activity = self.last_received
                if not self._paused and (len(self._queue) > self.options.max_queue
                                         or self._queued_bytes > self.options.max_queue_bytes):
                    self._paused = True
                    self.channel.pause_reading()
            elif type(ev) is Pong:
                self._ping_sent_at = None
                for pw in self._ping_waiters:
                    if not pw.done():
                        pw.set_result(None)
                self._ping_waiters.clear()
            elif type(ev) is Closed:
                self._on_closed(ev.code, ev.reason)
        if proto.failure_held:
            self._hold_failure()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _hold_failure(self) -> None:
        """Bad input came after good messages: fail once the application has taken them (recv() finds
        the queue empty) or after `close_timeout`, whichever is first; read nothing more meanwhile."""
        if not self._queue:
            self._fail_held()
            return
        if not self._paused:
            self._paused = True
            self.channel.pause_reading()
        asyncio.get_running_loop().call_later(self.options.close_timeout, self._fail_held)

    def _fail_held(self) -> None:
        proto = self.protocol
        if not proto.failure_held:
            return
        proto.fail_held()
        self._write(proto.data_to_send())
        for ev in proto.events_received():
            if type(ev) is Closed:
                self._on_closed(ev.code, ev.reason)

    def _on_eof(self) -> None:
        self.protocol.receive_eof()
        for ev in self.protocol.events_received():
            if type(ev) is Closed:
                self._on_closed(ev.code, ev.reason)
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        self.channel.close()
        self._wake()

    def _on_closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._closed.set()
        self._ended = True
        self._wake()
        for w in self._ping_waiters:
            if not w.done():
                w.set_exception(ConnectionClosed(code, reason))
        self._ping_waiters.clear()
        if not self.is_client:
            # section 7.1.1: the server closes the TCP connection first (queued bytes are still sent)
            self.channel.close()
        elif self._abort_handle is None:
            # the client waits for the server to close, but not forever
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(self.options.close_timeout, self.channel.abort)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _write(self, chunks: list[bytes]) -> bool:
        """Write without waiting; a peer that already has over `write_limit` bytes unread is dropped."""
        if self._writing_large:
            self._deferred.extend(chunks)
            return True
        ch = self.channel
        if ch.write_buffer_size() > self.options.write_limit:
            self._drop_slow()
            return False
        try:
            if len(chunks) == 1:
                ch.write(chunks[0])
            elif chunks:
                ch.writelines(chunks)  # a frame head and its payload, or several frames: one writev
        except Exception:  # the channel aborted itself (its own hard limit) or is gone
            self._on_closed(1006, "write failed")
            return False
        return True

    def _drop_slow(self) -> None:
        """A peer that does not read is cut off: its queued bytes are discarded with the transport."""
        self.dropped_slow = True
        self.channel.abort()
        self.protocol.receive_eof()
        self.protocol.events_received()
        self._on_closed(1006, "slow reader dropped")

    # ---- receiving ----
    async def recv(self) -> str | bytes:
        """The next message; raises `ConnectionClosed` once the connection is closed and drained."""
        while not self._queue:
            if self.protocol.failure_held:
                self._fail_held()
            if self._closed.is_set() or self.protocol.state is _CLOSED:
                raise ConnectionClosed(self.close_code or 1006, self.close_reason)
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._queue.popleft()
        self._queued_bytes -= len(data)
        if (self._paused and len(self._queue) <= self.options.max_queue // 2
                and self._queued_bytes <= self.options.max_queue_bytes // 2):
            self._paused = False
            self.channel.resume_reading()
        return data

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    # ---- sending ----
    async def send(self, data: str | bytes) -> None:
        """Send one message; waits while the peer has more than `write_high` bytes unread, and drops
        it as a slow reader if it does not catch up within `write_timeout`."""
        self.protocol.send_message(data)
        out = self.protocol.data_to_send()
        self.last_activity = time.monotonic()
        size = 0
        for chunk in out:
            size += len(chunk)
        if size <= _PIECE:
            if not self._write(out):
                raise ConnectionClosed(self.close_code or 1006, self.close_reason)
        else:
            await self._write_large(out)
        if self.channel.write_buffer_size() > self.options.write_high:
            await self._drain()

    async def _write_large(self, frames: list[bytes]) -> None:
        """Stream big frames in pieces with back-pressure, so that the bytes queued for the peer
        stay near `write_high` whatever the message size."""
        async with self._large_lock:
            ch = self.channel
            self._writing_large = True
            try:
                for frame in frames:
                    view = memoryview(frame)
                    for i in range(0, len(view), _PIECE):
                        if self._closed.is_set():
                            raise ConnectionClosed(self.close_code or 1006, self.close_reason)
                        try:
                            ch.write(view[i : i + _PIECE])
                        except Exception:
                            self._on_closed(1006, "write failed")
                            raise ConnectionClosed(1006, "write failed") from None
                        if ch.write_buffer_size() > self.options.write_high:
                            await self._drain()
            finally:
                self._writing_large = False
                deferred, self._deferred = self._deferred, []
            if deferred and not self._closed.is_set():
                self._write(deferred)

    async def _drain(self) -> None:
        try:
            await self.channel.drain(self.options.write_timeout)
        except NetTimeout:
            self._drop_slow()
            raise ConnectionClosed(1006, "slow reader dropped") from None
        except Exception:
            self._on_closed(1006, "connection lost")
            raise ConnectionClosed(1006, "connection lost") from None

    def send_nowait(self, data: str | bytes) -> bool:
        """Send without waiting; False if the connection is closed or was dropped as a slow reader."""
        if self.protocol.close_sent or self.protocol.state is not _OPEN:
            return False
        return self._write([self.protocol.encode_message(data)])

    def send_prepared(self, frame: bytes) -> bool:
        """Write a frame already encoded for this connection's parameters (the broadcast path).

        The hot loop of a broadcast: straight to the transport when there is one, with the same
        slow-reader rule as `_write` (which the channel's own, higher, hard limit backs up).
        """
        # (the core leaves OPEN as soon as a close frame is queued, so the state alone says "no more")
        if self._ended or self.protocol.state is not _OPEN:
            return False
        t = self._transport
        if t is None or self._writing_large:
            return self._write([frame])
        if t.is_closing():
            return False
        if t.get_write_buffer_size() > self.options.write_limit:
            self._drop_slow()
            return False
        t.write(frame)
        return True

    async def ping(self, data: bytes = b"", wait: float | None = None) -> None:
        """Send a ping and wait for a pong (any pong answers: section 5.5.3)."""
        self.protocol.send_ping(data)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ping_waiters.append(fut)
        self._write(self.protocol.data_to_send())
        async with asyncio.timeout(wait if wait is not None else self.options.ping_timeout):
            await fut

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake, bounded by `close_timeout`; the transport is gone when it returns."""
        if not self._closed.is_set() and self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._write(self.protocol.data_to_send())
        await self.wait_closed()

    async def wait_closed(self) -> None:
        try:
            async with asyncio.timeout(self.options.close_timeout):
                await self._closed.wait()
        except TimeoutError:
            self.channel.abort()
            self._on_closed(1006, "closing handshake timed out")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def open(self) -> bool:
        return not self._closed.is_set() and self.protocol.state is _OPEN and not self.protocol.close_sent

    # ---- timers (driven by a sweeper, one per server, or the client's own task) ----
    def check_timers(self, now: float) -> None:
        if self._closed.is_set():
            return
        opts = self.options
        if self._ping_sent_at is not None and opts.ping_timeout is not None:
            if now - self._ping_sent_at > opts.ping_timeout:
                log.debug("websocket %s: keepalive pong not received in time", self.peer)
                self.channel.abort()
                self.protocol.receive_eof()
                self.protocol.events_received()
                self._on_closed(1006, "keepalive timeout")
                return
        elif (opts.ping_interval is not None and now - self.last_received > opts.ping_interval
              and self.protocol.state is _OPEN and not self.protocol.close_sent):
            self.protocol.send_ping(b"hk")
            self._ping_sent_at = now
            self._write(self.protocol.data_to_send())
        if (opts.idle_timeout is not None and now - self.last_activity > opts.idle_timeout
                and self.protocol.state is _OPEN and not self.protocol.close_sent):
            self.protocol.send_close(1001, "idle timeout")
            self._write(self.protocol.data_to_send())
            self._abort_handle = asyncio.get_running_loop().call_later(opts.close_timeout, self.channel.abort)


class Sweeper:
    """One task that runs the keepalive and idle timers of many connections (cheaper than a task each)."""

    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self.connections: set[WebSocket] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, ws: WebSocket) -> None:
        self.connections.add(ws)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ws-sweeper")

    def discard(self, ws: WebSocket) -> None:
        self.connections.discard(ws)

    async def _run(self) -> None:
        while self.connections:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            for ws in list(self.connections):
                try:
                    ws.check_timers(now)
                except Exception:  # one broken connection must not stop the timers of the rest
                    log.exception("websocket timer check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
