"""An internal consumer of a live stream: the packager's own bounded queue, fed by a registry sink.

Registry readers (`registry.subscribe`) count as viewers in the stream's `readers` figure; the
packager is not a viewer, so it taps the stream through `stream.add_sink()` instead, with the same
rules as a reader: bounded, GOP-aware drop (resume at the next video keyframe), a start from the
cached GOP, and an end when the publisher leaves (the stream's state, checked at least twice a second).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from hivecast.media.live import AccessUnit, StreamEnded


class StreamTap:
    def __init__(self, stream: Any, maxlen: int) -> None:
        self.stream = stream
        self.maxlen = maxlen
        self._queue: collections.deque[AccessUnit] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._need_keyframe = False
        self._has_video = bool(stream.has_video)
        self.ended = False
        self.dropped = 0
        for au in stream.gop_snapshot()[-maxlen:]:
            self._offer(au)
        self._remove: Callable[[], None] | None = stream.add_sink(self._offer)

    def _offer(self, au: AccessUnit) -> None:
        if self.ended:
            return
        video = au.codec in ("h264", "h265")
        if self._need_keyframe:
            if not (video and au.keyframe):
                self.dropped += 1
                return
            self._need_keyframe = False
        if len(self._queue) >= self.maxlen:
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            if self._has_video and not (video and au.keyframe):
                self._need_keyframe = True
                return
        self._queue.append(au)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close_input(self) -> None:
        """The publisher left: what is queued is still read, then `get()` raises StreamEnded."""
        self.ended = True
        if self._remove is not None:
            self._remove()
            self._remove = None
        self._wake()

    async def get(self) -> AccessUnit:
        while not self._queue:
            if self.ended or self.stream.state != "live":
                raise StreamEnded(self.stream.name)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                # A sink hears nothing when the publisher leaves: look at the stream's state
                # at least twice a second.
                async with asyncio.timeout(0.5):
                    await self._waiter
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        self.close_input()
        self._queue.clear()
