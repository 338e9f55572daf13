"""Fan-out of one live stream to RTMP and HTTP-FLV readers: convert once, serialize once, batch writes.

One `FlvHub` per live stream name, created on its first reader. It is a synchronous sink on the
registry's `LiveStream` (so the publisher never waits), turns each access unit into FLV messages
once, and keeps the sequence headers and the current GOP for an instant start.

Writes are batched: messages collect for up to `batch_ms` and go out as one buffer per stream, the
same bytes object written to every reader (one send call per reader per batch instead of one per
message; SRS calls this merged write). A batch is cut before every keyframe, so each batch either
starts at a keyframe or holds none. A reader whose socket buffer is over `max_queue_bytes` skips
batches until one starts with a keyframe (it drops whole GOPs, never slows the publisher or the
others); a reader stuck that way for `write_timeout` seconds is cut off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from hivecast.media import AccessUnit, LiveRegistry, LiveStream
from hivecast.rtmp import flv
from hivecast.rtmp.mapping import FlvMessage, UnitsToFlv, metadata_message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    batch_ms: float = 20.0  # 0 sends every message at once (lowest latency, most send calls)
    chunk_size: int = 4096
    max_queue_bytes: int = 4 << 20
    write_timeout: float = 15.0
    gop_max_messages: int = 2000
    gop_max_bytes: int = 32 << 20


class HubReader:
    """One reader: `push()` gets each batch; the subclass decides how bytes reach the peer."""

    def __init__(self, hub: FlvHub) -> None:
        self.hub = hub
        self.waiting_key = False
        self.stuck_since = 0.0
        self.dropped_batches = 0
        self.dropped_gops = 0
        self.sent_bytes = 0
        self.closed = False
        self.on_end: Callable[[], None] | None = None

    def backlog(self) -> int:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def batch_for(self, messages: list[FlvMessage]) -> bytes:
        raise NotImplementedError

    def push(self, batch: dict[Any, bytes], messages: list[FlvMessage], starts_with_key: bool, now: float) -> None:
        if self.closed:
            return
        if self.waiting_key and not (starts_with_key and self.backlog() <= self.hub.settings.max_queue_bytes // 2):
            self.dropped_batches += 1
            if now - self.stuck_since > self.hub.settings.write_timeout:
                log.info("reader of %s stuck for %.0f s: closing it", self.hub.name, now - self.stuck_since)
                self.abort()
            return
        if not self.waiting_key and self.backlog() > self.hub.settings.max_queue_bytes:
            self.waiting_key = True
            self.stuck_since = now
            self.dropped_gops += 1
            self.dropped_batches += 1
            return
        resuming = self.waiting_key
        self.waiting_key = False
        key = self.batch_key()
        data = batch.get(key)
        if data is None:
            data = batch[key] = self.batch_for(messages)
        if resuming:
            # The sequence headers may have changed while this reader skipped: resend them first.
            self.write(self.batch_for(self.hub.converter.headers()))
        self.write(data)
        self.sent_bytes += len(data)

    def batch_key(self) -> Any:
        raise NotImplementedError

    def end(self) -> None:
        """The stream went offline."""
        if self.on_end is not None:
            self.on_end()


class RtmpHubReader(HubReader):
    def __init__(self, hub: FlvHub, transport: asyncio.WriteTransport, stream_id: int) -> None:
        super().__init__(hub)
        self.transport = transport
        self.stream_id = stream_id

    def backlog(self) -> int:
        return self.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def batch_key(self) -> Any:
        return ("rtmp", self.stream_id)

    def batch_for(self, messages: list[FlvMessage]) -> bytes:
        cs = self.hub.settings.chunk_size
        return b"".join(m.rtmp(self.stream_id, cs) for m in messages)


class FlvHttpReader(HubReader):
    """An HTTP-FLV viewer: batches queue here and the response body iterates them."""

    def __init__(self, hub: FlvHub) -> None:
        super().__init__(hub)
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False

    def backlog(self) -> int:
        return self._queued

    def write(self, data: bytes) -> None:
        self._queue.append(data)
        self._queued += len(data)
        self._wake()

    def abort(self) -> None:
        self.closed = True
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()
        super().end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def batch_key(self) -> Any:
        return "flv"

    def batch_for(self, messages: list[FlvMessage]) -> bytes:
        return b"".join(m.flv_tag() for m in messages)

    async def body(self, first: bytes, idle_timeout: float) -> AsyncIterator[bytes]:
        yield first
        try:
            while not self.closed:
                if self._queue:
                    # Hand the HTTP layer everything queued as one chunk.
                    data = b"".join(self._queue)
                    self._queue.clear()
                    self._queued = 0
                    yield data
                    continue
                if self.ended:
                    return
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    async with asyncio.timeout(idle_timeout):
                        await self._waiter
                except TimeoutError:
                    return
                finally:
                    self._waiter = None
        finally:
            self.hub.remove(self)


class FlvHub:
    def __init__(self, registry: LiveRegistry, stream: LiveStream, settings: FanoutSettings,
                 on_close: Callable[[FlvHub], None]) -> None:
        self.registry = registry
        self.stream = stream
        self.name = stream.name
        self.settings = settings
        self._on_close = on_close
        self.converter = UnitsToFlv(stream.tracks)
        self.metadata = metadata_message(stream.tracks)
        self.readers: set[HubReader] = set()
        self.gop: list[FlvMessage] = []
        self._gop_bytes = 0
        self.pending: list[FlvMessage] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self.closed = False
        self.messages = 0
        self.readers_total = 0
        self.has_video = stream.has_video
        self.has_audio = any(t.kind == "audio" for t in stream.tracks)
        # The cached GOP of the registry is this hub's starting point (it begins at a keyframe).
        for au in stream.gop_snapshot():
            for msg in self.converter.convert(au):
                self._remember(msg)
        self._remove_sink = stream.add_sink(self._on_unit)
        self._watch = asyncio.get_running_loop().create_task(self._watch_stream(), name=f"flv-hub {self.name}")

    async def _watch_stream(self) -> None:
        # The registry drops sinks silently when a stream goes offline: notice it here.
        while not self.closed:
            await asyncio.sleep(0.25)
            if self.registry.get(self.name) is not self.stream:
                self.close()

    def _remember(self, msg: FlvMessage) -> None:
        if msg.keyframe and msg.type_id == 9 and not self._is_header(msg):
            self.gop.clear()
            self._gop_bytes = 0
        if self._is_header(msg):
            return
        if self.has_video and not self.gop and not msg.keyframe:
            return  # wait for a keyframe to start the cache
        self.gop.append(msg)
        self._gop_bytes += len(msg.payload)
        if len(self.gop) > self.settings.gop_max_messages or self._gop_bytes > self.settings.gop_max_bytes:
            self.gop.clear()
            self._gop_bytes = 0

    def _is_header(self, msg: FlvMessage) -> bool:
        return msg is self.converter.video_header or msg is self.converter.audio_header

    def _on_unit(self, au: AccessUnit) -> None:
        for msg in self.converter.convert(au):
            self.messages += 1
            if msg.keyframe and not self._is_header(msg) and self.pending:
                self.flush()  # cut the batch before a keyframe: batches start at keyframes
            self.pending.append(msg)
            self._remember(msg)
        if self.pending:
            if self.settings.batch_ms <= 0:
                self.flush()
            elif self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_later(self.settings.batch_ms / 1000, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.pending:
            return
        messages, self.pending = self.pending, []
        key = messages[0].keyframe and messages[0].type_id == 9
        if not self.has_video:
            key = True
        batch: dict[Any, bytes] = {}
        now = time.monotonic()
        for reader in list(self.readers):
            reader.push(batch, messages, key, now)

    def join_messages(self) -> list[FlvMessage]:
        """What a new reader gets first: metadata, sequence headers, the cached GOP (flushed part)."""
        in_gop = sum(1 for m in self.pending if m in self.gop)  # identity: FlvMessage has eq=False
        flushed = self.gop[: len(self.gop) - in_gop]
        return [self.metadata, *self.converter.headers(), *flushed]

    def _admit(self, reader: HubReader) -> None:
        in_gop = sum(1 for m in self.pending if m in self.gop)
        if self.has_video and len(self.gop) == in_gop:
            # No cached GOP to start from: skip batches until one starts at a keyframe, so the
            # reader's first picture decodes.
            reader.waiting_key = True
            reader.stuck_since = time.monotonic()
        self.readers.add(reader)
        self.readers_total += 1

    def add_rtmp(self, transport: asyncio.WriteTransport, stream_id: int) -> tuple[RtmpHubReader, bytes]:
        reader = RtmpHubReader(self, transport, stream_id)
        first = reader.batch_for(self.join_messages())
        self._admit(reader)
        return reader, first

    def add_flv(self) -> tuple[FlvHttpReader, bytes]:
        reader = FlvHttpReader(self)
        first = flv.file_header(audio=self.has_audio, video=self.has_video) + reader.batch_for(self.join_messages())
        self._admit(reader)
        return reader, first

    def remove(self, reader: HubReader) -> None:
        self.readers.discard(reader)

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._remove_sink()
        self._watch.cancel()
        readers, self.readers = self.readers, set()
        for reader in readers:
            reader.end()
        self._on_close(self)

    def figures(self) -> dict[str, Any]:
        return {
            "readers": len(self.readers),
            "messages": self.messages,
            "dropped_gops": sum(r.dropped_gops for r in self.readers),
            "dropped_batches": sum(r.dropped_batches for r in self.readers),
        }


class FanoutManager:
    """The hubs of one node, one per live stream that has RTMP or HTTP-FLV readers."""

    def __init__(self, registry: LiveRegistry, settings: FanoutSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.hubs: dict[str, FlvHub] = {}

    def hub(self, name: str) -> FlvHub | None:
        stream = self.registry.get(name)
        if stream is None:
            return None
        hub = self.hubs.get(name)
        if hub is not None and (hub.closed or hub.stream is not stream):
            hub.close()
            hub = None
        if hub is None:
            hub = self.hubs[name] = FlvHub(self.registry, stream, self.settings, self._closed)
            stream_readers = stream.extra_readers

            # Count our readers in the stream's figures without replacing another counter.
            def count(prev: Callable[[], int] | None = stream_readers, h: FlvHub = hub) -> int:
                return len(h.readers) + (prev() if prev is not None else 0)

            stream.extra_readers = count
        return hub

    def _closed(self, hub: FlvHub) -> None:
        if self.hubs.get(hub.name) is hub:
            del self.hubs[hub.name]

    def close(self) -> None:
        for hub in list(self.hubs.values()):
            with contextlib.suppress(Exception):
                hub.close()
