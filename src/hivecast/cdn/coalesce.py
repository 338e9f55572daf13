"""Request coalescing: one upstream fetch per key, shared by every request that misses on it.

A `Fetch` is the busy object of Varnish: created by the first miss, run as its own task (so it
survives the client that started it leaving), it publishes the response head once and then a
growing list of body chunks that any number of readers stream from, each at its own pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hivecast.cdn.store import StoredObject


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
    def __init__(self, key: str, *, read_timeout: float) -> None:
        self.key = key
        self.read_timeout = read_timeout
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[FetchHead] = loop.create_future()
        self.chunks: list[bytes] = []
        self.offsets: list[int] = []   # starting byte offset of each chunk
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiters = 0
        self._more: asyncio.Future[None] = loop.create_future()
        self.task: asyncio.Task[None] | None = None

    # ---- producer ----
    def set_head(self, head: FetchHead) -> None:
        if not self.head.done():
            self.head.set_result(head)

    def feed(self, chunk: bytes) -> None:
        self.offsets.append(self.size)
        self.chunks.append(chunk)
        self.size += len(chunk)
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

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

    # ---- consumers ----
    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the body as they arrive (end None: to the end of the body)."""
        index = 0
        pos = start
        while end is None or pos < end:
            # find the chunk holding `pos`
            while index < len(self.chunks) and self.offsets[index] + len(self.chunks[index]) <= pos:
                index += 1
            if index < len(self.chunks):
                chunk = self.chunks[index]
                lo = pos - self.offsets[index]
                hi = len(chunk) if end is None else min(len(chunk), end - self.offsets[index])
                piece = chunk if lo == 0 and hi == len(chunk) else chunk[lo:hi]
                pos += len(piece)
                index += 1
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
