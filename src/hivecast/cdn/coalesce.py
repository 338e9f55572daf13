"""Request coalescing: one upstream fetch per key, shared by every request that misses on it.

A `Fetch` is the busy object of Varnish: created by the first miss, run as its own task (so it
survives the client that started it leaving), it publishes the response head once and then a
growing body that any number of readers stream from, each at its own pace.

Memory stays bounded for large objects: only the newest `max_buffer` bytes (at least) are kept in
memory. Older bytes are dropped once every active reader is past them, or once they are in the
backing file (the cache file being written), from which slower readers and late joiners then read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hivecast.cdn.store import StoredObject

_FILE_READ = 256 * 1024


@dataclass(slots=True)
class FetchHead:
    status: int
    headers: list[tuple[str, str]]
    storable: bool
    vary: list[str]
    variant: str                        # the secondary key of the request that started the fetch
    content_length: int | None
    revalidated: StoredObject | None = None  # a 304 freshened this stored object: serve it
    age: float = 0.0                    # corrected initial age (RFC 9111 4.2.3) of the response


class Fetch:
    def __init__(self, key: str, *, read_timeout: float, max_buffer: int = 16 * 1024 * 1024) -> None:
        self.key = key
        self.read_timeout = read_timeout
        self.max_buffer = max_buffer
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[FetchHead] = loop.create_future()
        self._chunks: list[bytes] = []
        self._offsets: list[int] = []  # starting byte offset of each chunk held in memory
        self.floor = 0                 # bytes below this offset are no longer in memory
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiters = 0
        self._more: asyncio.Future[None] = loop.create_future()
        self.task: asyncio.Task[None] | None = None
        self._positions: dict[int, int] = {}  # active reader -> next offset it needs
        self._ids = itertools.count()
        self.backing_fd: int | None = None   # read-only fd on the cache file being written
        self.purged = False                  # a purge matched while in flight: do not store the result
        self.on_unread: Callable[[], None] | None = None  # called when the last reader leaves early
        self.backed = 0                      # bytes known to be in the backing file

    # ---- producer ----
    def set_head(self, head: FetchHead) -> None:
        if not self.head.done():
            self.head.set_result(head)

    def set_backing(self, path: str | os.PathLike[str]) -> None:
        """Readers may fall back to this file for bytes dropped from memory (opened read-only,
        so it stays readable after the file is renamed, evicted or abandoned)."""
        try:
            self.backing_fd = os.open(path, os.O_RDONLY)
        except OSError:
            self.backing_fd = None

    def backed_up_to(self, offset: int) -> None:
        self.backed = offset

    def feed(self, chunk: bytes) -> None:
        self._offsets.append(self.size)
        self._chunks.append(chunk)
        self.size += len(chunk)
        self._trim()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def release(self) -> None:
        """No new readers will join (the fetch left the in-flight table): the backing file
        closes once the readers still streaming are done."""
        self._released = True
        self._maybe_close_backing()

    _released = False

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.done = True
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # mark retrieved: waiters may all have left
        self._wake()

    def _wake(self) -> None:
        if not self._more.done():
            self._more.set_result(None)
        self._more = asyncio.get_running_loop().create_future()

    def _trim(self) -> None:
        held = self.size - self.floor
        if held <= self.max_buffer:
            return
        # Keep at least half the buffer for readers near the front; below that, drop what every
        # reader has passed, or what the backing file already holds.
        limit = self.size - self.max_buffer // 2
        readers_done = min(self._positions.values(), default=self.size)
        new_floor = min(limit, max(readers_done, self.backed if self.backing_fd is not None else 0))
        if new_floor <= self.floor:
            return
        i = bisect.bisect_right(self._offsets, new_floor) - 1
        # drop whole chunks that end at or before new_floor
        while i >= 0 and self._offsets[i] + len(self._chunks[i]) > new_floor:
            i -= 1
        if i < 0:
            return
        del self._chunks[:i + 1]
        del self._offsets[:i + 1]
        self.floor = self._offsets[0] if self._offsets else self.size

    def body(self) -> bytes | None:
        """The whole body, if it is all still in memory (small objects)."""
        return b"".join(self._chunks) if self.floor == 0 else None

    def can_read_from(self, offset: int) -> bool:
        return offset >= self.floor or (self.backing_fd is not None and offset < self.backed)

    def _maybe_close_backing(self) -> None:
        if self._released and not self._positions and self.backing_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.backing_fd)
            self.backing_fd = None

    # ---- consumers ----
    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the body as they arrive (end None: to the end of the body)."""
        me = next(self._ids)
        pos = start
        self._positions[me] = pos
        try:
            while end is None or pos < end:
                piece = self._from_file(pos, end) if pos < self.floor else self._from_memory(pos, end)
                if piece:
                    pos += len(piece)
                    self._positions[me] = pos
                    yield piece
                    continue
                if self.done:
                    if self.error is not None:
                        raise ConnectionError(f"upstream fetch failed mid-body: {self.error}")
                    return
                waiter = self._more
                try:
                    async with asyncio.timeout(self.read_timeout):
                        await asyncio.shield(waiter)
                except TimeoutError:
                    raise ConnectionError("upstream body stalled") from None
        finally:
            self._positions.pop(me, None)
            self._maybe_close_backing()
            if not self._positions and not self.done and self.on_unread is not None:
                self.on_unread()

    def _from_memory(self, pos: int, end: int | None) -> bytes:
        i = bisect.bisect_right(self._offsets, pos) - 1
        if i < 0 or i >= len(self._chunks):
            return b""
        chunk = self._chunks[i]
        lo = pos - self._offsets[i]
        if lo >= len(chunk):
            return b""
        hi = len(chunk) if end is None else min(len(chunk), end - self._offsets[i])
        return chunk if lo == 0 and hi == len(chunk) else chunk[lo:hi]

    def _from_file(self, pos: int, end: int | None) -> bytes:
        if self.backing_fd is None or pos >= self.backed:
            raise ConnectionError("reader fell behind the upstream fetch")
        limit = min(self.floor, self.backed)
        if end is not None:
            limit = min(limit, end)
        data = os.pread(self.backing_fd, min(_FILE_READ, limit - pos), pos)
        if not data:
            raise ConnectionError("cache file shorter than expected")
        return data
