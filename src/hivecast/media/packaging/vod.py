"""On-demand packaging of one file: CMAF renditions (optionally a transcoded ladder), HLS and DASH.

`package_file()` is synchronous and CPU-bound: the node runs it in a worker process (`service`),
the CLI runs it directly. Output is built in a temporary sibling directory and renamed into place
only when complete, so a failed or killed job leaves nothing that looks like a packaged video.

Layout of the output directory:
    index.m3u8            HLS multivariant playlist
    manifest.mpd          DASH MPD (static)
    v0/ v1/ ...           video renditions, highest first (v0 = the source, passed through)
        init.mp4 seg-1.m4s ... index.m3u8
    a0/                   audio rendition (AAC), same layout
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from hivecast.media.packaging import dash, hls
from hivecast.media.packaging.fragments import FragmentMuxer, _Sink
from hivecast.media.packaging.ladder import Rung, parse_ladder
from hivecast.media.packaging.model import Presentation, Rendition, Segment
from hivecast.media.packaging.segmenter import MAX_TARGET, MIN_TARGET, CutCursor, plan_cuts

log = logging.getLogger(__name__)

PASSTHROUGH_VIDEO = {"h264", "hevc"}
PASSTHROUGH_AUDIO = {"aac"}
FORMATS = {"hls", "dash", "ts"}  # ts: classic HLS with MPEG-TS segments, audio muxed in
DEFAULT_FORMATS = {"hls", "dash"}
TS_OFFSET = 10  # seconds added to MPEG-TS timestamps so audio priming never goes negative
MAX_DURATION = 6 * 3600.0

Progress = Callable[[float, str], None]


class PackagingError(Exception):
    """The input cannot be packaged; the message says why, in one line for the user."""


@dataclass(slots=True)
class PackageResult:
    out_dir: Path
    duration: float
    renditions: list[dict[str, Any]]
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Track:
    """One output rendition being built: packets in, segment files out."""

    def __init__(self, rendition: Rendition, template: Any, root: Path, cuts: list[float]) -> None:
        self.r = rendition
        self.muxer = FragmentMuxer(template)
        self.dir = root / rendition.id
        self.dir.mkdir(parents=True)
        # The first cut is where the stream starts; packets before it (audio priming) join segment 1.
        self.cursor = CutCursor(cuts[1:])
        self.pending: list[av.Packet[Any]] = []
        self.number = 0
        self.tb: float | None = None  # the packets' time base as a float (Fractions are slow per packet)
        self.ts: _TsTrack | None = None  # the classic-HLS twin of a video rendition
        self.audio_sinks: list[_TsTrack] = []  # audio: the TS renditions it is muxed into

    def add(self, packet: av.Packet[Any]) -> None:
        if packet.dts is None or packet.size == 0:
            return
        if self.tb is None:
            self.tb = float(packet.time_base) if packet.time_base is not None else 0.0
        t = (packet.pts if packet.pts is not None else packet.dts) * self.tb
        # Video cuts only at keyframes; every audio frame is a sync sample.
        can_cut = packet.is_keyframe or self.r.kind == "audio"
        if can_cut and self.cursor.is_cut(t) and self.pending:
            self.flush()
        self.pending.append(packet)
        if self.ts is not None:
            self.ts.add_video(packet)
        for sink in self.audio_sinks:
            sink.add_audio(packet)

    def flush(self) -> None:
        if not self.pending:
            return
        frag = self.muxer.mux(self.pending)
        self.pending = []
        self.number += 1
        uri = self.r.segment_uri(self.number)
        (self.dir / uri).write_bytes(frag.data)
        self.r.segments.append(Segment(self.number, frag.decode_time, frag.duration, uri, len(frag.data)))

    def finish(self) -> None:
        self.flush()
        if self.muxer.init is None or self.muxer.track is None:
            raise PackagingError(f"rendition {self.r.id} produced no media")
        (self.dir / self.r.init_uri).write_bytes(self.muxer.init)
        track = self.muxer.track
        self.r.codecs = track.codecs
        self.r.timescale = track.timescale
        if self.r.kind == "video":
            self.r.width, self.r.height = self.r.width or track.width, self.r.height or track.height
        else:
            self.r.sample_rate, self.r.channels = track.sample_rate, track.channels
        self.r.measure_bandwidth()


class _TsTrack:
    """Classic HLS for one video rendition: MPEG-TS segments cut where its fMP4 twin cuts, audio muxed in."""

    def __init__(self, twin: _Track, video_template: Any, audio_template: Any | None) -> None:
        self.twin = twin
        self.video_template = video_template
        self.audio_template = audio_template
        self.cursor = CutCursor(twin.cursor.cuts)
        self.number = 0
        self.out: Any = None
        self.streams: tuple[Any, Any] = (None, None)
        self.sizes: list[int] = []
        self.path: Path | None = None

    def _open(self) -> None:
        self.number += 1
        self.path = self.twin.dir / f"seg-{self.number}.ts"
        self.out = av.open(str(self.path), "w", format="mpegts")
        v = self.out.add_stream_from_template(self.video_template)
        a = self.out.add_stream_from_template(self.audio_template) if self.audio_template is not None else None
        self.streams = (v, a)

    def _close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
            assert self.path is not None
            self.sizes.append(self.path.stat().st_size)

    @staticmethod
    def _shift(packet: av.Packet[Any]) -> None:
        assert packet.time_base is not None
        offset = int(TS_OFFSET / packet.time_base)
        if packet.pts is not None:
            packet.pts += offset
        if packet.dts is not None:
            packet.dts += offset

    def add_video(self, packet: av.Packet[Any]) -> None:
        if packet.dts is None or packet.size == 0:
            return
        t = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
        if packet.is_keyframe and self.cursor.is_cut(t) and self.out is not None:
            self._close()
        if self.out is None:
            self._open()
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.duration, copy.is_keyframe = packet.duration, packet.is_keyframe
        self._shift(copy)
        copy.stream = self.streams[0]
        self.out.mux(copy)

    def add_audio(self, packet: av.Packet[Any]) -> None:
        if self.out is None or self.streams[1] is None or packet.dts is None or packet.size == 0:
            return
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base, copy.duration = packet.pts, packet.dts, packet.time_base, packet.duration
        self._shift(copy)
        copy.stream = self.streams[1]
        self.out.mux(copy)

    def finish(self, audio: Rendition | None) -> Rendition:
        self._close()
        r = self.twin.r
        ts = Rendition(r.id, "video", ",".join(c for c in (r.codecs, audio.codecs if audio else "") if c),
                       r.timescale, "", playlist_uri=f"{r.id}/ts.m3u8", width=r.width, height=r.height,
                       frame_rate=r.frame_rate, segment_pattern="seg-$Number$.ts")
        if len(self.sizes) != len(r.segments):
            raise PackagingError(f"rendition {r.id}: MPEG-TS and fMP4 cuts differ")
        for seg, size in zip(r.segments, self.sizes, strict=True):
            ts.segments.append(Segment(seg.number, seg.start, seg.duration, ts.segment_uri(seg.number), size))
        ts.measure_bandwidth()
        return ts


def _open(path: Path) -> Any:
    if not path.is_file():
        raise PackagingError(f"{path}: no such file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise PackagingError(f"{path.name}: not a media file we can read ({exc.strerror or exc})") from None


def probe(path: Path, target: float) -> tuple[float, list[float], float]:
    """(duration, segment cut times, frame rate) from a demux-only pass over the video."""
    container = _open(path)
    try:
        if not container.streams.video:
            raise PackagingError(f"{path.name}: no video stream")
        video = container.streams.video[0]
        keyframes: list[float] = []
        last = 0.0
        first: float | None = None
        count = 0
        tb = float(video.time_base or 0)
        try:
            for packet in container.demux(video):
                if packet.pts is None:
                    continue
                t = packet.pts * tb
                first = t if first is None else min(first, t)
                last = max(last, t + (packet.duration or 0) * tb)
                count += 1
                if packet.is_keyframe:
                    keyframes.append(t)
        except av.error.FFmpegError as exc:
            raise PackagingError(f"{path.name}: damaged media ({exc.strerror or exc})") from None
        if count == 0 or not keyframes:
            raise PackagingError(f"{path.name}: the video stream has no frames we can read")
        duration = last - (first or 0.0)
        if duration > MAX_DURATION:
            raise PackagingError(f"{path.name}: longer than {MAX_DURATION / 3600:.0f} hours")
        rate = video.average_rate or video.guessed_rate
        return duration, plan_cuts(keyframes, target), float(rate) if rate else 0.0
    finally:
        container.close()


def package_file(
    source: Path,
    out_dir: Path,
    *,
    ladder: str | list[str] | None = None,
    segment_seconds: float = 4.0,
    formats: set[str] | None = None,
    progress: Progress | None = None,
    replace: bool = False,
) -> PackageResult:
    started = time.monotonic()
    formats = set(formats or DEFAULT_FORMATS)
    if not formats or formats - FORMATS:
        raise PackagingError(f"formats must be among {sorted(FORMATS)}")
    if not MIN_TARGET <= segment_seconds <= MAX_TARGET:
        raise PackagingError(f"segment duration must be {MIN_TARGET:g}..{MAX_TARGET:g} s")
    rungs = parse_ladder(ladder)
    report = progress or (lambda _p, _s: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not replace:
        raise PackagingError(f"{out_dir} already exists")
    report(0.0, "probe")
    duration, cuts, fps = probe(source, segment_seconds)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        presentation = _package(source, work, rungs, cuts, duration, fps, segment_seconds, formats, report)
        files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        _commit(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report(100.0, "done")
    return PackageResult(
        out_dir, duration,
        [{"id": r.id, "kind": r.kind, "codecs": r.codecs, "width": r.width, "height": r.height,
          "bandwidth": r.bandwidth, "average_bandwidth": r.average_bandwidth, "segments": len(r.segments)}
         for r in presentation.renditions],
        files, time.monotonic() - started,
    )


def _commit(work: Path, out_dir: Path) -> None:
    """Make the finished directory visible in one rename (the old one, if any, goes after)."""
    for p in work.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    work.chmod(0o755)
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(work, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _encoder_holder() -> Any:
    # Encoders are opened through a throwaway muxer so their streams carry codec parameters
    # (extradata) and can serve as templates for the per-fragment muxers.
    return av.open(_Sink(), "w", format="mp4", options={"movflags": "frag_custom+empty_moov"})


def _package(source: Path, work: Path, rungs: list[Rung], cuts: list[float], duration: float,
             fps: float, target: float, formats: set[str], report: Progress) -> Presentation:
    container = _open(source)
    holder: Any = None
    try:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        src_w, src_h = video.codec_context.width, video.codec_context.height
        vcodec = video.codec_context.name
        passthrough = vcodec in PASSTHROUGH_VIDEO
        rungs = [r for r in rungs if not passthrough or r.height < src_h]
        if not passthrough and not rungs:
            raise PackagingError(
                f"{source.name}: unsupported video codec {vcodec!r} (packaged as is: H.264, HEVC); "
                "give a ladder (e.g. --ladder 720p) to transcode it"
            )
        tracks: list[_Track] = []
        renditions: list[Rendition] = []

        def rendition(kind: str, index: int) -> Rendition:
            rid = f"{kind[0]}{index}"
            r = Rendition(rid, kind, "", 1, "init.mp4", playlist_uri=f"{rid}/index.m3u8",  # type: ignore[arg-type]
                          frame_rate=fps if kind == "video" else 0.0)
            renditions.append(r)
            return r

        video_passthrough: _Track | None = None
        if passthrough:
            video_passthrough = _Track(rendition("video", 0), video, work, cuts)
            tracks.append(video_passthrough)
        encoders: list[tuple[Any, _Track, Rung, tuple[int, int]]] = []
        need_decode = bool(rungs)
        if rungs or (audio is not None and audio.codec_context.name not in PASSTHROUGH_AUDIO):
            holder = _encoder_holder()
        for rung in rungs:
            w, h = rung.size_for(src_w, src_h)
            enc = holder.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001) if fps else 30)
            enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
            enc.bit_rate = rung.bitrate
            keyint = max(1, round((fps or 30) * MAX_TARGET * 2))
            enc.codec_context.options = {
                "preset": "veryfast", "forced-idr": "1",
                "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
                "maxrate": str(int(rung.bitrate * 1.2)), "bufsize": str(int(rung.bitrate * 2)),
            }
            r = rendition("video", len([x for x in renditions if x.kind == "video"]))
            r.width, r.height = w, h
            encoders.append((enc, _Track(r, enc, work, cuts), rung, (w, h)))
        audio_track: _Track | None = None
        audio_encoder: Any = None
        if audio is not None:
            if audio.codec_context.name in PASSTHROUGH_AUDIO:
                audio_track = _Track(rendition("audio", 0), audio, work, cuts)
            else:
                audio_encoder = holder.add_stream("aac", rate=48000)
                audio_encoder.bit_rate = 128_000
                audio_encoder.layout = "stereo"
                audio_track = _Track(rendition("audio", 0), audio_encoder, work, cuts)
                need_decode = True
        if holder is not None:
            holder.start_encoding()
        for _enc, track, _rung, _size in encoders:
            tracks.append(track)
        if audio_track is not None:
            tracks.append(audio_track)

        ts_tracks: list[_TsTrack] = []
        if "ts" in formats:
            for track in tracks:
                if track.r.kind == "video":
                    track.ts = _TsTrack(track, track.muxer.template,
                                        audio_track.muxer.template if audio_track is not None else None)
                    ts_tracks.append(track.ts)
            if audio_track is not None:
                audio_track.audio_sinks = ts_tracks
        video_tb = float(video.time_base or 0)
        # Frames to force as keyframes in the transcoded rungs: the source's cut times.
        force = CutCursor(cuts)
        streams = [video] + ([audio] if audio is not None else [])
        last_report = 0.0
        start_t = cuts[0] if cuts else 0.0
        try:
            for packet in container.demux(streams):
                if packet.stream.type == "video":
                    if packet.pts is not None and duration > 0:
                        pct = min(99.0, 100.0 * (packet.pts * video_tb - start_t) / duration)
                        if pct - last_report >= 1.0:
                            last_report = pct
                            report(pct, "package")
                    if video_passthrough is not None:
                        video_passthrough.add(packet)
                    if encoders:
                        for frame in packet.decode():
                            t = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                            key = force.is_cut(t)
                            for enc, track, _rung, (w, h) in encoders:
                                scaled = frame.reformat(w, h, "yuv420p")
                                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                                if key:
                                    scaled.pict_type = av.video.frame.PictureType.I
                                for out in enc.encode(scaled):
                                    track.add(out)
                elif audio_track is not None:
                    if audio_encoder is not None:
                        for frame in packet.decode():
                            for out in audio_encoder.encode(frame):
                                audio_track.add(out)
                    else:
                        audio_track.add(packet)
            for enc, track, _rung, _size in encoders:
                for out in enc.encode(None):
                    track.add(out)
            if audio_encoder is not None and audio_track is not None:
                for out in audio_encoder.encode(None):
                    audio_track.add(out)
        except av.error.FFmpegError as exc:
            raise PackagingError(f"{source.name}: damaged media ({exc.strerror or exc})") from None
        del need_decode
        report(99.0, "manifests")
        for track in tracks:
            track.finish()
        presentation = Presentation(renditions, live=False, target_duration=target)
        _write_manifests(work, presentation, formats)
        if ts_tracks:
            audio_r = audio_track.r if audio_track is not None else None
            classic = Presentation([t.finish(audio_r) for t in ts_tracks], live=False, target_duration=target)
            (work / "index-ts.m3u8").write_text(hls.multivariant(classic))
            for r in classic.renditions:
                (work / r.playlist_uri).write_text(hls.media_playlist(classic, r))
        (work / "package.json").write_text(json.dumps({
            "source": source.name, "duration": duration, "segment_seconds": target,
            "renditions": [r.id for r in renditions],
        }))
        return presentation
    finally:
        container.close()
        if holder is not None:
            try:
                holder.close()
            except Exception:  # the throwaway muxer never saw a packet
                pass


def _write_manifests(work: Path, p: Presentation, formats: set[str]) -> None:
    if "hls" in formats:
        (work / "index.m3u8").write_text(hls.multivariant(p))
        for r in p.renditions:
            (work / r.id / "index.m3u8").write_text(hls.media_playlist(p, r))
    if "dash" in formats:
        (work / "manifest.mpd").write_text(dash.mpd(p))
