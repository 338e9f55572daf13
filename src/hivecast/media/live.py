"""Live media inside a process: access units, and the registry of live streams that carries them.

Who uses it:
- a *publisher* (RTSP ingest, the RTSP pull client, the demo channel, later RTMP) calls
  `registry.publish(name, tracks)` and gets a `Publisher` handle; `handle.send(au)` hands each
  access unit to every consumer. A handle replaced by a newer publisher is stale and its sends
  are ignored.
- a *consumer* (HLS/DASH packager, recorder, RTSP relay) calls `registry.subscribe(name)` and
  reads `AccessUnit`s from a `LiveReader` with a bounded queue, or registers a synchronous sink
  with `stream.add_sink(callback)` for zero-copy fan-out (the callback must not block).

Forms of the payload (`AccessUnit.data`):
- H.264 and H.265: Annex-B byte stream, every NAL unit prefixed by a 4-byte start code 00 00 00 01;
  a keyframe access unit carries its parameter sets (H.265: VPS too) in band before the slice.
- AAC: one raw AAC frame (no ADTS header); the AudioSpecificConfig is `TrackInfo.config`.
- Opus: one Opus packet (RFC 6716), 48 kHz timebase.
- AV1: one temporal unit as OBUs with size fields (the "low overhead bitstream format", as in MP4
  and FLV samples); `TrackInfo.config` is the AV1CodecConfigurationRecord (av1C, with the sequence
  header OBU in its configOBUs).
- VP9: one frame (or superframe) as the encoder wrote it; `TrackInfo.config` is the
  VPCodecConfigurationRecord as the vpcC box carries it (version and flags first).
Timestamps `pts`/`dts` count ticks of `timebase` per second (90000 for video, the sample rate for
audio, 48000 for Opus). They start near zero when the stream goes live; dts strictly increases per
track (video pts jumps around it when the stream has B-frames). All tracks of a stream share one
time origin, so `pts / timebase` lines audio up with video.

Where to find it: `node.services["live_registry"]`. Bus events on `node.bus`: `stream.live` and
`stream.offline` ({"name"}), and `stream.qos` ({"name", "bitrate_bps", "readers", ...}) about once
a second per live stream; `registry.info(name)` gives {"name", "state", "readers", "tracks", "qos",
"source", "uptime", "units", "bytes"}.

Readers never slow the publisher: when a reader's queue is full, everything queued is dropped,
counted in `reader.dropped`, and the reader resumes at the next video keyframe (GOP-aware drop).
A new reader first gets the cached current GOP (since the last keyframe) for an instant start.

Every method here must be called on the event loop's thread (a thread-based publisher such as the
demo encoder hops over with `loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hivecast.events import EventBus

log = logging.getLogger(__name__)

Codec = Literal["h264", "aac", "h265", "opus", "av1", "vp9"]
StreamState = Literal["live", "offline"]
Sink = Callable[["AccessUnit"], None]

DEFAULT_READER_QUEUE = 512  # access units (about 8 s of 25 fps video plus 48 kHz AAC)
VIDEO_CODECS = frozenset({"h264", "h265", "av1", "vp9"})
GOP_CACHE_MAX_UNITS = 600
GOP_CACHE_MAX_BYTES = 16 * 1024 * 1024


class LiveError(Exception):
    """Base of hivecast.media.live errors."""


class StreamBusyError(LiveError):
    """A publisher already holds this stream name."""


class StreamNotLiveError(LiveError):
    """No publisher is live on this stream name."""


class StreamEnded(LiveError):
    """The publisher went away; the reader has read everything that was queued."""


@dataclass(frozen=True, slots=True)
class TrackInfo:
    id: int
    codec: Codec
    clock_rate: int
    # H.264/H.265: parameter sets without start codes; AAC: AudioSpecificConfig, sample rate and channels;
    # AV1/VP9: `config` holds the av1C/vpcC record.
    sps: bytes = b""
    pps: bytes = b""
    config: bytes = b""
    channels: int = 0
    width: int = 0
    height: int = 0
    vps: bytes = b""  # H.265 only

    @property
    def kind(self) -> Literal["video", "audio"]:
        return "video" if self.codec in VIDEO_CODECS else "audio"

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"id": self.id, "codec": self.codec, "kind": self.kind, "clock_rate": self.clock_rate}
        if self.kind == "video" and self.width:
            info.update(width=self.width, height=self.height)
        if self.kind == "audio":
            info["channels"] = self.channels
        return info


@dataclass(frozen=True, slots=True)
class AccessUnit:
    track: int
    codec: Codec
    pts: int
    dts: int
    timebase: int
    keyframe: bool
    data: bytes
    arrival: float = field(default=0.0, compare=False)  # time.monotonic() when it entered the registry

    @property
    def pts_seconds(self) -> float:
        return self.pts / self.timebase


class LiveReader:
    """One consumer's bounded queue of access units."""

    def __init__(self, stream: LiveStream, maxlen: int, has_video: bool) -> None:
        self.stream = stream
        self.maxlen = maxlen
        self._queue: collections.deque[AccessUnit] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._has_video = has_video
        self._need_keyframe = False
        self.dropped = 0
        self.delivered = 0
        self.closed = False
        self.ended = False

    def __len__(self) -> int:
        return len(self._queue)

    def _offer(self, au: AccessUnit) -> None:
        if self.closed:
            return
        if self._need_keyframe:
            if not (au.keyframe and au.codec in VIDEO_CODECS):
                self.dropped += 1
                return
            self._need_keyframe = False
        if len(self._queue) >= self.maxlen:
            # GOP-aware drop: discard what is queued and wait for the next keyframe.
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            if self._has_video and not (au.keyframe and au.codec in VIDEO_CODECS):
                self._need_keyframe = True
                return
        self._queue.append(au)
        self._wake()

    def _end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> AccessUnit | None:
        if self._queue:
            self.delivered += 1
            return self._queue.popleft()
        if self.ended or self.closed:
            raise StreamEnded(self.stream.name)
        return None

    async def get(self) -> AccessUnit:
        """The next access unit; raises StreamEnded after the publisher left (wrap in asyncio.timeout)."""
        while True:
            au = self.get_nowait()
            if au is not None:
                return au
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stream._remove_reader(self)
            self._wake()

    def __aiter__(self) -> LiveReader:
        return self

    async def __anext__(self) -> AccessUnit:
        try:
            return await self.get()
        except StreamEnded:
            raise StopAsyncIteration from None


class Publisher:
    """The handle a publisher writes through; stale once closed or replaced."""

    def __init__(self, stream: LiveStream, generation: int) -> None:
        self.stream = stream
        self._generation = generation
        self.sent = 0

    @property
    def active(self) -> bool:
        return self.stream._generation == self._generation and self.stream.state == "live"

    def send(self, au: AccessUnit) -> None:
        if self.active:
            self.sent += 1
            self.stream._deliver(au)

    def update_qos(self, **figures: Any) -> None:
        """Publisher-side figures (bitrate, loss, jitter ...) shown in stream info and `stream.qos`."""
        if self.active:
            self.stream.qos.update(figures)

    def close(self) -> None:
        if self.active:
            self.stream.registry._go_offline(self.stream)


class LiveStream:
    def __init__(self, registry: LiveRegistry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.tracks: list[TrackInfo] = []
        self.state: StreamState = "offline"
        self.qos: dict[str, Any] = {}
        self.source = ""
        self.started_at = 0.0
        self._generation = 0
        self._readers: list[LiveReader] = []
        self._sinks: list[Sink] = []
        self._gop: list[AccessUnit] = []
        self._gop_bytes = 0
        self.units = 0
        self.bytes = 0
        # External consumers that are not LiveReaders (RTSP sessions) report themselves here.
        self.extra_readers: Callable[[], int] | None = None

    @property
    def readers(self) -> int:
        return len(self._readers) + (self.extra_readers() if self.extra_readers else 0)

    @property
    def has_video(self) -> bool:
        return any(t.kind == "video" for t in self.tracks)

    def add_sink(self, sink: Sink) -> Callable[[], None]:
        """A synchronous consumer called for every access unit; returns the function that removes it."""
        self._sinks.append(sink)

        def remove() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)

        return remove

    def gop_snapshot(self) -> list[AccessUnit]:
        """The access units since the last video keyframe (all of them for audio-only streams)."""
        return list(self._gop)

    def _deliver(self, au: AccessUnit) -> None:
        if not au.arrival:
            au = AccessUnit(au.track, au.codec, au.pts, au.dts, au.timebase, au.keyframe, au.data, time.monotonic())
        self.units += 1
        self.bytes += len(au.data)
        video = au.codec in VIDEO_CODECS
        if video and au.keyframe:
            self._gop.clear()
            self._gop_bytes = 0
        if not self.has_video or self._gop or (video and au.keyframe):
            self._gop.append(au)
            self._gop_bytes += len(au.data)
            if len(self._gop) > GOP_CACHE_MAX_UNITS or self._gop_bytes > GOP_CACHE_MAX_BYTES:
                dropped = self._gop.pop(0)
                self._gop_bytes -= len(dropped.data)
                if self.has_video:
                    self._gop.clear()
                    self._gop_bytes = 0
        for reader in self._readers:
            reader._offer(au)
        for sink in list(self._sinks):
            try:
                sink(au)
            except Exception:
                log.exception("live sink failed on stream %s; removing it", self.name)
                if sink in self._sinks:
                    self._sinks.remove(sink)

    def _remove_reader(self, reader: LiveReader) -> None:
        if reader in self._readers:
            self._readers.remove(reader)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "readers": self.readers,
            "tracks": [t.describe() for t in self.tracks],
            "qos": dict(self.qos),
            "source": self.source,
            "uptime": round(time.monotonic() - self.started_at, 3) if self.state == "live" else 0.0,
            "units": self.units,
            "bytes": self.bytes,
        }


class LiveRegistry:
    """Every live stream of this node by name; published at `node.services["live_registry"]`."""

    def __init__(self, bus: EventBus | None = None, *, allow_replace: bool = False) -> None:
        self.bus = bus
        self.allow_replace = allow_replace
        self._streams: dict[str, LiveStream] = {}

    def publish(self, name: str, tracks: list[TrackInfo], *, source: str = "", replace: bool | None = None) -> Publisher:
        """Go live on `name`; raises StreamBusyError when a publisher holds it (unless replacing)."""
        current = self._streams.get(name)
        if current is not None and current.state == "live":
            if not (self.allow_replace if replace is None else replace):
                raise StreamBusyError(f"stream {name!r} already has a publisher")
            self._go_offline(current)
        # Every publishing session gets a fresh stream object: handles and sinks of the old one go stale.
        stream = self._streams[name] = LiveStream(self, name)
        stream._generation += 1
        stream.tracks = list(tracks)
        stream.state = "live"
        stream.source = source
        stream.qos = {}
        stream.units = stream.bytes = 0
        stream._gop.clear()
        stream._gop_bytes = 0
        stream.started_at = time.monotonic()
        if self.bus is not None:
            self.bus.publish("stream.live", {"name": name})
        log.info("stream %s is live (%s)", name, source or "unknown source")
        return Publisher(stream, stream._generation)

    def _go_offline(self, stream: LiveStream) -> None:
        stream.state = "offline"
        stream._generation += 1
        readers, stream._readers = stream._readers, []
        for reader in readers:
            reader._end()
        stream._sinks.clear()
        stream._gop.clear()
        if self.bus is not None:
            self.bus.publish("stream.offline", {"name": stream.name})
        log.info("stream %s is offline", stream.name)
        if self._streams.get(stream.name) is stream:
            del self._streams[stream.name]

    def get(self, name: str) -> LiveStream | None:
        stream = self._streams.get(name)
        return stream if stream is not None and stream.state == "live" else None

    def names(self) -> list[str]:
        return sorted(n for n, s in self._streams.items() if s.state == "live")

    def info(self, name: str) -> dict[str, Any] | None:
        stream = self._streams.get(name)
        return stream.info() if stream is not None else None

    def list(self) -> list[dict[str, Any]]:
        return [s.info() for s in self._streams.values() if s.state == "live"]

    def subscribe(self, name: str, *, maxlen: int = DEFAULT_READER_QUEUE, from_gop: bool = True) -> LiveReader:
        """A reader of a live stream, starting at the cached GOP; raises StreamNotLiveError."""
        stream = self.get(name)
        if stream is None:
            raise StreamNotLiveError(name)
        reader = LiveReader(stream, maxlen, stream.has_video)
        if from_gop:
            for au in stream._gop[-maxlen:]:
                reader._offer(au)
        stream._readers.append(reader)
        return reader

    def report_qos(self, name: str, figures: dict[str, Any]) -> None:
        """Publish a `stream.qos` event (callers rate-limit it, typically once per second)."""
        stream = self.get(name)
        if stream is not None and self.bus is not None:
            self.bus.publish("stream.qos", {"name": name, **figures})

    def close_all(self) -> None:
        for stream in list(self._streams.values()):
            if stream.state == "live":
                self._go_offline(stream)
