"""Live HLS/DASH: every stream in the live registry is packaged as it arrives into media_dir/live/NAME/.

Per stream (a `Channel`, which outlives publisher restarts):
- the video track drives the cuts: a segment starts at a keyframe once the target has passed; an
  LL-HLS part is cut every `part_seconds`; each part is one CMAF chunk (moof+mdat) muxed by PyAV,
  and a segment file is its parts back to back. Audio follows the video's segment boundaries.
- playlists and the MPD are written to disk atomically after every part, and served from memory
  by `LiveRoutes` for blocking reloads (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip`).
- a publisher restart continues the timeline with EXT-X-DISCONTINUITY (and a new DASH Period) and a
  new init segment; a publisher leaving mid-segment closes that segment, so the playlist stays valid.
- files older than `live_retention` segments are deleted; requests for them get the store's 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from hivecast.events import Event
from hivecast.http import Request, Response, StaticFiles
from hivecast.media.live import StreamEnded
from hivecast.media.packaging import dash, hls
from hivecast.media.packaging.fragments import FragmentMuxer, _Sink
from hivecast.media.packaging.h264 import SpsError, sps_size
from hivecast.media.packaging.h265 import parse_sps
from hivecast.media.packaging.ladder import parse_ladder
from hivecast.media.packaging.livetranscode import LADDER_TRACK_BASE, LiveLadder
from hivecast.media.packaging.model import Part, Presentation, Rendition, Segment
from hivecast.media.packaging.tap import StreamTap

if TYPE_CHECKING:
    from hivecast.config.settings import PackagingSettings
    from hivecast.node.node import Node

log = logging.getLogger(__name__)

AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
PLAYLIST_CACHE = "public, max-age=1"
PACKAGED_VIDEO = ("h264", "h265")  # the video codecs the live packager takes (other tracks are skipped)
PACKAGED_AUDIO = ("aac", "opus")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def video_template(keyframe_annexb: bytes, codec: str = "h264") -> Any:
    """An input stream describing the H.264/HEVC track, parsed from its first keyframe (parameter
    sets in band: SPS/PPS, and the VPS for HEVC, which the mp4 muxer turns into avcC or hvcC)."""
    container = av.open(io.BytesIO(keyframe_annexb), format="hevc" if codec == "h265" else "h264")
    return container, container.streams.video[0]


def audio_template(config: bytes, channels: int, rate: int) -> Any:
    """An AAC encoder stream with the same sample rate and channels: its AudioSpecificConfig is what
    the publisher's AAC-LC frames need in the init segment."""
    if len(config) >= 2:
        aot = config[0] >> 3
        index = ((config[0] & 7) << 1) | (config[1] >> 7)
        channels = (config[1] >> 3) & 0xF or channels
        if index < len(AAC_RATES):
            rate = AAC_RATES[index]
        if aot != 2:
            log.warning("AAC object type %d packaged with an AAC-LC init segment", aot)
    holder = av.open(_Sink(), "w", format="mp4", options={"movflags": "frag_custom+empty_moov"})
    stream = holder.add_stream("aac", rate=rate or 48000)
    stream.layout = "stereo" if channels == 2 else ("mono" if channels == 1 else f"{channels or 2}c")
    holder.start_encoding()
    return holder, stream


COMMON_FRAME_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0, 100.0, 119.88, 120.0)


def nominal_frame_rate(measured: float) -> float:
    """The frame rate a segment's frame count over its duration shows, snapped to the usual rates
    (a live source carries no reliable rate of its own: VUI timing is optional, RTMP metadata may lie)."""
    nearest = min(COMMON_FRAME_RATES, key=lambda rate: abs(measured - rate))
    return nearest if abs(measured - nearest) <= nearest * 0.005 else round(measured, 3)


def opus_template(channels: int) -> Any:
    """An Opus encoder stream for the init segment (an `Opus` sample entry with its dOps box): Opus
    always runs at 48 kHz, and the publisher's packets decode with any matching channel count."""
    holder = av.open(_Sink(), "w", format="mp4", options={"movflags": "frag_custom+empty_moov"})
    stream = holder.add_stream("libopus", rate=48000)
    stream.layout = "mono" if channels == 1 else "stereo"
    holder.start_encoding()
    return holder, stream


@dataclass(slots=True)
class Recording:
    """A live stream being kept as an on-demand video: its segments are hard-linked as they close."""

    video_id: str
    work: Path  # hidden partial directory next to the final one
    out: Path  # media_dir/vod/ID
    renditions: dict[str, Rendition] = field(default_factory=dict)

    def add(self, r: Rendition, seg: Segment, root: Path) -> None:
        copy = self.renditions.get(r.id)
        if copy is None:
            copy = self.renditions[r.id] = Rendition(
                r.id, r.kind, r.codecs, r.timescale, seg.init_uri or r.init_uri, playlist_uri=r.playlist_uri,
                width=r.width, height=r.height, frame_rate=r.frame_rate, sample_rate=r.sample_rate,
                channels=r.channels, segment_pattern=r.segment_pattern)
            (self.work / r.id).mkdir(parents=True, exist_ok=True)
        init = seg.init_uri or r.init_uri
        for name in (init, seg.uri):
            target = self.work / r.id / name
            if not target.exists():
                try:
                    os.link(root / r.id / name, target)
                except OSError:
                    shutil.copyfile(root / r.id / name, target)
        copy.segments.append(Segment(seg.number, seg.start, seg.duration, seg.uri, seg.size,
                                     discontinuity=seg.discontinuity and bool(copy.segments),
                                     program_date_time=seg.program_date_time, init_uri=init))


@dataclass(slots=True)
class _TrackState:
    rendition: Rendition
    info: Any  # TrackInfo
    muxer: FragmentMuxer | None = None
    holder: Any = None
    init_uri: str = ""
    pending: list[Any] = field(default_factory=list)  # AccessUnits of the open part
    held: Any = None  # the newest AU, held back until the next one gives its duration
    segment: Segment | None = None
    segment_bytes: bytearray = field(default_factory=bytearray)
    part_start: float = 0.0
    segment_start: float = 0.0  # channel media time (s) of the open segment's first sample
    segment_samples: int = 0  # access units in the open segment
    discontinuity: bool = False  # the next segment follows a publisher restart
    broken: bool = False  # the muxer refused this track's media: it is skipped from then on


class Channel:
    """One live stream's packaging state across publisher generations."""

    def __init__(self, name: str, root: Path, settings: PackagingSettings) -> None:
        self.name = name
        self.root = root
        self.settings = settings
        self.generation = 0
        self.tracks: dict[int, _TrackState] = {}
        self.presentation = Presentation([], live=True, target_duration=settings.segment_seconds,
                                         part_target=settings.part_seconds if settings.low_latency else 0.0)
        self.changed = asyncio.Condition()
        self.base = 0.0  # media time (s) where this generation starts on the channel's timeline
        self.origin = 0.0  # the generation's first dts (s)
        self.end = 0.0  # media time of the newest sample
        self.wall0 = 0.0  # wall clock of media time `base`... mapped per generation
        self.availability_start = 0.0
        self.next_number = 1
        self.video_cut_time = 0.0  # channel media time where the open video segment started
        self.removed: list[list[Path]] = []  # files of segments that left the window, oldest first
        self.recordings: list[Recording] = []

    # -- generations --------------------------------------------------------------------------
    def begin(self, tracks: list[Any], ladder: list[Any] | None = None) -> None:
        if self.generation:
            self.base = self.end
        self.generation += 1
        self.presentation.ended = False
        self.origin = -1.0
        old = {t.rendition.id: t.rendition for t in self.tracks.values()}
        self.tracks = {}
        vi = ai = 0
        for info in [*tracks, *(ladder or [])]:
            # HEVC sources are packaged too (CMAF/fMP4 is the only HLS form for HEVC); ladder rungs are H.264.
            if info.codec in PACKAGED_VIDEO and (vi == 0 or info.id >= LADDER_TRACK_BASE):
                rid = f"v{vi}"
                vi += 1
            elif info.codec in PACKAGED_AUDIO and ai == 0:
                rid = "a0"
                ai += 1
            else:
                continue  # other codecs are not packaged (yet)
            r = old.get(rid) or Rendition(rid, info.kind, "", 90000, "init.mp4", playlist_uri=f"{rid}/index.m3u8",
                                          segment_pattern="seg-$Number$.m4s")
            (self.root / rid).mkdir(parents=True, exist_ok=True)
            self.tracks[info.id] = _TrackState(r, info, init_uri=f"init-{self.generation}.mp4",
                                               discontinuity=self.generation > 1 and bool(r.segments))
        self.presentation.renditions = [t.rendition for t in self.tracks.values()]

    @property
    def video(self) -> _TrackState | None:
        return next((t for t in self.tracks.values() if t.rendition.kind == "video"), None)

    def media_time(self, au: Any) -> float:
        return float(self.base + au.dts / au.timebase - self.origin)

    # -- access units -----------------------------------------------------------------------
    def push(self, au: Any) -> bool:
        """Take one access unit; True when something new was published."""
        track = self.tracks.get(au.track)
        if track is None or track.broken:
            return False
        if self.origin < 0:
            if track is not self.video and self.video is not None:
                return False  # start on the source's first video keyframe
            if track.rendition.kind == "video" and not au.keyframe:
                return False
            self.origin = au.dts / au.timebase
            now_wall, now_mono = time.time(), time.monotonic()
            self.wall0 = now_wall - (now_mono - (au.arrival or now_mono)) - self.base
            if not self.availability_start:
                self.availability_start = self.wall0
        t = self.media_time(au)
        if track.rendition.kind == "video" and au.arrival:
            # The earliest arrival best maps media time to the publisher's clock (the first units
            # come late, after the encoder's start-up); later segments' PROGRAM-DATE-TIME use it.
            arrived = time.time() - (time.monotonic() - au.arrival)
            self.wall0 = min(self.wall0, arrived - t)
        if t < self.base - 0.5:
            return False  # from before this generation started (the GOP cache of audio)
        held, track.held = track.held, au
        if held is None:
            return False
        duration = max(1, au.dts - held.dts)
        return self._add(track, held, duration)

    def _add(self, track: _TrackState, au: Any, duration: int) -> bool:
        t = self.media_time(au)
        self.end = max(self.end, t + duration / au.timebase)
        is_video = track.rendition.kind == "video"
        changed = False
        # Segment boundary: video keyframe after the target; audio once video has cut past it.
        if is_video:
            # Each video rendition cuts on its own keyframes; the rungs' keyframes sit where the
            # source's are, so they cut at the same instants. Audio follows the source (v0).
            cut = au.keyframe and (track.segment is None
                                   or t - track.segment_start >= self.settings.segment_seconds - 0.02)
            if cut and track is self.video:
                self.video_cut_time = t
        elif self.video is None:  # audio-only stream: cut on time alone
            cut = track.segment is None or t - track.segment_start >= self.settings.segment_seconds - 0.02
        else:
            cut = track.segment is None or (t >= self.video_cut_time - 1e-6
                                            and track.segment_start < self.video_cut_time - 1e-6)
        # A part closes before the unit that would take it past the part target: parts never
        # exceed PART-TARGET (RFC 8216bis 4.4.4.9), at 25 fps they hold 12 frames (0.48 s) of 0.5.
        part_end = t + duration / au.timebase
        part_due = bool(track.pending) and part_end - track.part_start > self.settings.part_seconds + 1e-6
        if (cut or part_due) and track.pending:
            changed |= self._flush_part(track)
        if cut:
            changed |= self._close_segment(track)
            self._open_segment(track, t)
        if not track.pending:
            track.part_start = t
        track.pending.append((au, duration))
        return changed

    def _open_segment(self, track: _TrackState, t: float) -> None:
        r = track.rendition
        number = self._number_for(track)
        seg = Segment(number, 0, 0, r.segment_uri(number), complete=False, init_uri=track.init_uri,
                      program_date_time=self.wall0 + t, discontinuity=track.discontinuity)
        track.discontinuity = False
        track.segment_start = t
        track.segment = seg
        track.segment_bytes = bytearray()
        track.segment_samples = 0
        r.segments.append(seg)

    def _number_for(self, track: _TrackState) -> int:
        r = track.rendition
        return (r.segments[-1].number + 1) if r.segments else self.next_number

    def _packet(self, au: Any, duration: int) -> av.Packet[Any]:
        packet = av.Packet(au.data)
        packet.pts, packet.dts = au.pts, au.dts
        packet.time_base = Fraction(1, au.timebase)
        packet.duration = duration
        packet.is_keyframe = bool(au.keyframe)
        return packet

    def _ensure_muxer(self, track: _TrackState, first: Any) -> bool:
        if track.muxer is not None:
            return True
        try:
            info = track.info
            if track.rendition.kind == "video":
                # Publishers that send the parameter sets out of band only (SDP, sequence header)
                # leave them out of the keyframes: put them in front for the template.
                params = b"".join(b"\x00\x00\x00\x01" + p for p in (info.vps, info.sps, info.pps) if p)
                track.holder, template = video_template(params + first.data, first.codec)
            elif info.codec == "opus":
                track.holder, template = opus_template(info.channels)
            else:
                track.holder, template = audio_template(info.config, info.channels, info.clock_rate)
        except (av.error.FFmpegError, IndexError, ValueError) as exc:
            log.warning("%s: cannot package track %s: %s", self.name, track.rendition.id, exc)
            return False
        # The timeline: tfdt = (dts - origin + base) in the track's timescale.
        track.muxer = FragmentMuxer(template, origin=Fraction(self.origin) - Fraction(self.base),
                                    time_base=Fraction(1, first.timebase))
        return True

    def _flush_part(self, track: _TrackState) -> bool:
        items, track.pending = track.pending, []
        if track.segment is None or not self._ensure_muxer(track, items[0][0]):
            return False
        assert track.muxer is not None
        try:
            frag = track.muxer.mux([self._packet(au, d) for au, d in items])
        except (av.error.FFmpegError, ValueError) as exc:  # BoxError is a ValueError
            # Media the muxer cannot take (e.g. a stream without usable parameter sets): give the
            # track up rather than fail every part, and say so once.
            log.warning("%s: stopped packaging %s: %s", self.name, track.rendition.id, exc)
            track.broken = True
            return False
        r = track.rendition
        rdir = self.root / r.id
        if track.muxer.init is not None and not (rdir / track.init_uri).exists():
            (rdir / track.init_uri).write_bytes(track.muxer.init)
            assert track.muxer.track is not None
            r.codecs, r.timescale = track.muxer.track.codecs, track.muxer.track.timescale
            r.width, r.height = track.muxer.track.width, track.muxer.track.height
            r.sample_rate, r.channels = track.muxer.track.sample_rate, track.muxer.track.channels
            r.init_uri = track.init_uri
        seg = track.segment
        if not seg.parts:
            seg.start = frag.decode_time
        index = len(seg.parts)
        part_uri = f"seg-{seg.number}.{index}.m4s"
        if self.presentation.part_target:
            _write_bytes(rdir / part_uri, frag.data)
        seg.parts.append(Part(part_uri, frag.duration, frag.first_sync, len(frag.data)))
        track.segment_samples += len(items)
        seg.duration += frag.duration
        track.segment_bytes += frag.data
        r.preload_hint = f"seg-{seg.number}.{index + 1}.m4s"
        return True

    def _close_segment(self, track: _TrackState) -> bool:
        seg = track.segment
        if seg is None:
            return False
        r = track.rendition
        track.segment = None
        if not seg.parts:
            r.segments.remove(seg)
            return False
        _write_bytes(self.root / r.id / seg.uri, bytes(track.segment_bytes))
        seg.size = len(track.segment_bytes)
        seg.complete = True
        if r.kind == "video" and seg.duration and track.segment_samples > 1:
            r.frame_rate = nominal_frame_rate(track.segment_samples * r.timescale / seg.duration)
        for rec in self.recordings:
            rec.add(r, seg, self.root)
        r.preload_hint = f"seg-{seg.number + 1}.0.m4s"
        self._retain(r)
        r.measure_bandwidth()
        return True

    def _retain(self, r: Rendition) -> None:
        """Slide the playlist window and delete files past the retention count."""
        complete = [s for s in r.segments if s.complete]
        window = self.settings.live_window
        while len(complete) > window:
            gone = complete.pop(0)
            r.segments.remove(gone)
            if gone.discontinuity:
                r.discontinuity_sequence += 1
            self.removed.append([self.root / r.id / gone.uri, *(self.root / r.id / p.uri for p in gone.parts)])
        # Segments stay on disk a while after leaving the window (players a little behind, caches).
        keep = max(0, self.settings.live_retention - window) * max(1, len(self.tracks))
        while len(self.removed) > keep:
            for path in self.removed.pop(0):
                with contextlib.suppress(OSError):
                    path.unlink()

    def finish(self) -> None:
        """The publisher left: close the open segments so the playlist ends cleanly."""
        for track in self.tracks.values():
            if track.held is not None:
                held = track.held
                track.held = None
                self._add(track, held, self._last_duration(track, held))
            if track.pending:
                self._flush_part(track)
            self._close_segment(track)
            if track.holder is not None:
                with contextlib.suppress(Exception):
                    track.holder.close()
            track.muxer = None
        self.presentation.ended = True
        for t in self.tracks.values():
            t.rendition.preload_hint = None

    @staticmethod
    def _last_duration(track: _TrackState, au: Any) -> int:
        """The newest unit's duration, which no later unit tells: a frame at 30 fps, an AAC frame
        (1024 samples), a 20 ms Opus packet."""
        if track.rendition.kind == "video":
            return max(1, round(int(au.timebase) / 30))
        return 1024 if track.info.codec == "aac" else max(1, int(au.timebase) // 50)

    # -- output ------------------------------------------------------------------------------
    def timing(self) -> dash.LiveTiming:
        return dash.LiveTiming(
            availability_start=self.availability_start,
            publish_time=time.time(),
            time_shift_buffer=self.settings.live_window * self.settings.segment_seconds,
            minimum_update_period=min(2.0, self.settings.segment_seconds),
            utc_timing_url="/live/_time",
        )

    def write(self) -> None:
        p = self.presentation
        if not p.renditions or not all(r.codecs for r in p.renditions):
            return
        _write_atomic(self.root / "index.m3u8", hls.multivariant(p))
        for r in p.renditions:
            _write_atomic(self.root / r.id / "index.m3u8", hls.media_playlist(p, r))
        _write_atomic(self.root / "manifest.mpd", dash.mpd(p, self.timing()))


def _write_bytes(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LivePackager:
    """Node component: packages every live stream of `node.services["live_registry"]`."""

    name = "live-packager"

    def __init__(self) -> None:
        self._node: Node | None = None
        self.channels: dict[str, Channel] = {}
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._sub: Any = None

    async def start(self, node: Node) -> None:
        self._node = node
        settings = node.settings.packaging
        node.services["live_packager"] = self
        node.router.exact("/live/_time", self._time)
        registry = node.services.get("live_registry")
        if registry is None or not settings.live:
            log.info("no live registry: live packaging is off")
            return
        self._sub = node.bus.subscribe("stream.live")
        node.spawn(self._watch(), name="live-packager")
        for name in registry.names():
            info = registry.info(name)
            if info and info.get("state") == "live":
                self._start_channel(name)

    async def _watch(self) -> None:
        async for event in self._sub:
            assert isinstance(event, Event)
            name = event.data.get("name")
            if isinstance(name, str):
                self._start_channel(name)

    def _start_channel(self, name: str) -> None:
        node = self._node
        assert node is not None
        if name in self._tasks and not self._tasks[name].done():
            return
        channel = self.channels.get(name)
        if channel is None:
            root = node.settings.media_dir / "live" / name
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
            channel = self.channels[name] = Channel(name, root, node.settings.packaging)
            self._routes(name)
        self._tasks[name] = node.spawn(self._run(channel), name=f"live-packager:{name}")

    def _routes(self, name: str) -> None:
        """One prefix route per stream (longer than the store's `/live/`, so it wins): playlists from
        memory with blocking reload, and media files from the store, where a request for the hinted
        next part (EXT-X-PRELOAD-HINT) waits until that part is written."""
        node = self._node
        assert node is not None
        store = StaticFiles(node.settings.media_dir / "live" / name)

        async def route(req: Request) -> Response:
            rel = req.path[len(req.route_prefix):]
            if rel == "index.m3u8":
                return await self._playlist(req, name, None)
            if rel == "manifest.mpd":
                return await self._mpd(req, name)
            rid, _, leaf = rel.partition("/")
            if leaf == "index.m3u8":
                return await self._playlist(req, name, rid)
            if leaf.endswith(".m4s") and req.method == "GET":
                await self._await_upcoming(name, rid, leaf)
            return await store(req)

        origin = node.services.get("live_origin")
        if origin is not None:
            origin.mount(name, route)  # behind the edge cache of `serve`, like every /live/ path
        else:
            node.router.prefix(f"/live/{name}/", route)

    async def _await_upcoming(self, name: str, rid: str, leaf: str) -> None:
        """Hold a request for media being made until it is written: the hinted next part
        (EXT-X-PRELOAD-HINT), or the whole segment being cut now.

        Players run ahead of the live edge: ffmpeg's DASH reader fetches `$Number$ + 1` as soon as it
        has read a segment (it never waits for the availability time a SegmentTimeline implies), and
        on a 404 it skips to the next number, then realigns on the next MPD and plays a stretch twice.
        Held, such a request is answered when the segment closes, which paces the player at the live edge.
        A request further ahead still gets its 404 at once."""
        channel = self.channels.get(name)
        if channel is None or channel.presentation.ended:
            return
        r = next((x for x in channel.presentation.renditions if x.id == rid), None)
        if r is None:
            return
        is_hinted_part = bool(channel.presentation.part_target) and r.preload_hint == leaf
        cutting = r.segments[-1] if r.segments and not r.segments[-1].complete else None
        if not is_hinted_part and (cutting is None or cutting.uri != leaf):
            return
        path = channel.root / rid / leaf
        generation = channel.generation
        assert self._node is not None
        try:
            async with asyncio.timeout(self._node.settings.packaging.blocking_timeout):
                async with channel.changed:
                    await channel.changed.wait_for(lambda: path.exists() or channel.presentation.ended
                                                   or channel.generation != generation
                                                   or (is_hinted_part and r.preload_hint != leaf))
        except TimeoutError:
            pass

    async def _run(self, channel: Channel) -> None:
        node = self._node
        assert node is not None
        registry = node.services["live_registry"]
        stream = registry.get(channel.name)
        if stream is None or stream.state != "live":
            return
        reader = StreamTap(stream, maxlen=2048)
        tracks = list(stream.tracks) if stream is not None else []
        ladder = self._ladder(channel.name, tracks)
        channel.begin(tracks, ladder.tracks(*self._source_size(tracks)) if ladder is not None else None)
        if ladder is not None:
            node.spawn(self._transcode(channel, ladder), name=f"live-ladder:{channel.name}")
        try:
            while True:
                try:
                    async with asyncio.timeout(30.0):
                        au = await reader.get()
                except TimeoutError:
                    continue
                except StreamEnded:  # the publisher left
                    break
                try:
                    changed = channel.push(au)
                except (av.error.FFmpegError, ValueError) as exc:
                    log.warning("%s: dropped an access unit: %s", channel.name, exc)
                    continue
                if changed:
                    await self._publish(channel)
        finally:
            reader.close()
            channel.finish()
            await self._publish(channel)
            for rec in list(channel.recordings):
                channel.recordings.remove(rec)
                self._finish_recording(rec)

    # -- recording to on demand ---------------------------------------------------------------
    def start_recording(self, name: str, video_id: str) -> None:
        """Keep `name` from its next segment on as the on-demand video `video_id` (until stopped or offline)."""
        from hivecast.media.packaging.service import VIDEO_ID

        node = self._node
        assert node is not None
        channel = self.channels.get(name)
        if channel is None or channel.presentation.ended:
            raise KeyError(f"stream {name!r} is not live")
        if not VIDEO_ID.fullmatch(video_id):
            raise ValueError(f"bad video id {video_id!r}")
        out = node.settings.media_dir / "vod" / video_id
        if out.exists() or any(r.video_id == video_id for c in self.channels.values() for r in c.recordings):
            raise ValueError(f"video {video_id} already exists")
        work = out.with_name(f".{video_id}.recording")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        channel.recordings.append(Recording(video_id, work, out))

    def stop_recording(self, video_id: str) -> Path | None:
        """Finish a recording: VOD playlists and MPD, renamed into media_dir/vod/ID; None if it was empty."""
        for channel in self.channels.values():
            for rec in list(channel.recordings):
                if rec.video_id == video_id:
                    channel.recordings.remove(rec)
                    return self._finish_recording(rec)
        raise KeyError(f"no recording {video_id!r}")

    def _finish_recording(self, rec: Recording) -> Path | None:
        from hivecast.media.packaging.vod import _write_manifests

        assert self._node is not None
        bus = self._node.bus
        renditions = [r for r in rec.renditions.values() if r.segments]
        if not renditions:
            shutil.rmtree(rec.work, ignore_errors=True)
            bus.publish("vod.failed", {"id": rec.video_id, "error": "the recording holds no complete segment"})
            return None
        for r in renditions:
            r.measure_bandwidth()
        p = Presentation(sorted(renditions, key=lambda r: r.id, reverse=True), live=False,
                         target_duration=self._node.settings.packaging.segment_seconds)
        _write_manifests(rec.work, p, {"hls", "dash"})
        os.replace(rec.work, rec.out)
        files = sorted(str(f.relative_to(rec.out)) for f in rec.out.rglob("*") if f.is_file())
        bus.publish("vod.packaged", {"id": rec.video_id, "dir": str(rec.out), "files": files})
        return rec.out

    def _ladder(self, name: str, tracks: list[Any]) -> LiveLadder | None:
        assert self._node is not None
        spec = self._node.settings.packaging.live_ladder
        source = next((t for t in tracks if t.codec in PACKAGED_VIDEO), None)
        if not spec or source is None:
            return None
        width, height = self._source_size(tracks)
        if not height:
            log.warning("%s: source size unknown, no live ladder", name)
            return None
        ladder = LiveLadder(parse_ladder(spec), source)
        return ladder if ladder.tracks(width, height) else None

    @staticmethod
    def _source_size(tracks: list[Any]) -> tuple[int, int]:
        source = next((t for t in tracks if t.codec in PACKAGED_VIDEO), None)
        if source is None:
            return 0, 0
        if not source.width and source.sps:
            try:
                if source.codec == "h265":
                    sps = parse_sps(source.sps)
                    return sps.width, sps.height
                return sps_size(source.sps)
            except SpsError as exc:
                log.warning("cannot read the SPS: %s", exc)
                return 0, 0
        return source.width, source.height

    async def _transcode(self, channel: Channel, ladder: LiveLadder) -> None:
        """Feed the ladder from its own reader, off the event loop; a slow ladder loses GOPs, not the source."""
        assert self._node is not None
        registry = self._node.services["live_registry"]
        stream = registry.get(channel.name)
        if stream is None:
            return
        reader = StreamTap(stream, maxlen=256)
        generation = channel.generation
        try:
            while channel.generation == generation:
                try:
                    async with asyncio.timeout(30.0):
                        au = await reader.get()
                except TimeoutError:
                    continue
                except StreamEnded:
                    break
                if au.track != ladder.source.id:
                    continue
                try:
                    outputs = await asyncio.to_thread(ladder.process, au)
                except (av.error.FFmpegError, ValueError) as exc:
                    log.warning("%s: live ladder skipped a frame: %s", channel.name, exc)
                    continue
                if channel.generation != generation or channel.presentation.ended:
                    break
                changed = False
                for out in outputs:
                    changed |= channel.push(out)
                if changed:
                    await self._publish(channel)
        finally:
            reader.close()

    async def _publish(self, channel: Channel) -> None:
        channel.write()
        async with channel.changed:
            channel.changed.notify_all()

    # -- HTTP ------------------------------------------------------------------------------
    async def _time(self, request: Request) -> Response:
        return Response.text(dash.iso(time.time()) + "\n", headers=[("cache-control", "no-store")])

    async def _playlist(self, request: Request, name: str, rid: str | None) -> Response:
        channel = self.channels.get(name)
        if channel is None or not channel.presentation.renditions:
            return Response.text("not found\n", status=404)
        p = channel.presentation
        if rid is None:
            return self._text(hls.multivariant(p), "application/vnd.apple.mpegurl")
        r = next((x for x in p.renditions if x.id == rid), None)
        if r is None:
            return Response.text("not found\n", status=404)
        q = request.query
        if "_HLS_msn" in q:
            try:
                msn = int(q["_HLS_msn"])
                part = int(q.get("_HLS_part", "-1"))
            except ValueError:
                return Response.text("bad _HLS_msn or _HLS_part\n", status=400)
            last_msn, _ = hls.last_position(r)
            if msn > last_msn + 2:
                return Response.text("_HLS_msn too far ahead\n", status=400)
            assert self._node is not None
            try:
                async with asyncio.timeout(self._node.settings.packaging.blocking_timeout):
                    async with channel.changed:
                        await channel.changed.wait_for(lambda: self._reached(r, msn, part) or p.ended)
            except TimeoutError:
                return Response.text("playlist did not advance in time\n", status=503)
        text = hls.media_playlist(p, r, skip=q.get("_HLS_skip") in ("YES", "v2"))
        return self._text(text, "application/vnd.apple.mpegurl")

    @staticmethod
    def _reached(r: Rendition, msn: int, part: int) -> bool:
        last_msn, last_part = hls.last_position(r)
        if last_msn > msn:
            # msn is complete once a later segment exists (its parts included).
            return True
        if last_msn != msn:
            return False
        if part < 0:
            return bool(r.segments and r.segments[-1].complete)
        return last_part >= part

    async def _mpd(self, request: Request, name: str) -> Response:
        channel = self.channels.get(name)
        if channel is None or not channel.presentation.renditions:
            return Response.text("not found\n", status=404)
        return self._text(dash.mpd(channel.presentation, channel.timing()), "application/dash+xml")

    @staticmethod
    def _text(text: str, content_type: str) -> Response:
        return Response.text(text, content_type=content_type, headers=[("cache-control", PLAYLIST_CACHE)])

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        for task in self._tasks.values():
            task.cancel()
