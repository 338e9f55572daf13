"""The live packaging core fed with synthetic access units (H.264 Annex-B from libx264, raw AAC): no network."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import m3u8
from mpegdash.parser import MPEGDASHParser

from hivecast.config.settings import PackagingSettings
from hivecast.media.live import AccessUnit, TrackInfo
from hivecast.media.packaging.bmff import parse_fragment
from hivecast.media.packaging.ladder import parse_ladder
from hivecast.media.packaging.livepackager import Channel, nominal_frame_rate
from hivecast.media.packaging.livetranscode import LiveLadder

FPS = 30


def _split_parameter_sets(data: bytes) -> tuple[dict[int, bytes], bytes]:
    """HEVC parameter sets (VPS 32, SPS 33, PPS 34) out of an Annex-B access unit, and the rest."""
    params: dict[int, bytes] = {}
    rest = b""
    for nal in data.split(b"\x00\x00\x01"):
        nal = nal.rstrip(b"\x00")
        if not nal:
            continue
        kind = (nal[0] >> 1) & 0x3F
        if kind in (32, 33, 34):
            params[kind] = nal
        else:
            rest += b"\x00\x00\x00\x01" + nal
    return params, rest


def access_units(seconds: float, start: float = 0.0, size: tuple[int, int] = (64, 48), *, hevc_opus: bool = False
                 ) -> tuple[list[TrackInfo], list[AccessUnit]]:
    """H.264 + AAC, or (hevc_opus) H.265 with its parameter sets out of band, as RTSP's SDP gives them, + Opus."""
    v = av.CodecContext.create("libx265" if hevc_opus else "libx264", "w")
    (v.width, v.height), v.pix_fmt = size, "yuv420p"
    v.time_base = Fraction(1, 90000)
    v.framerate = FPS
    v.options = ({"preset": "ultrafast", "x265-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0:log-level=error"}
                 if hevc_opus else {"preset": "ultrafast", "tune": "zerolatency", "x264-params": f"keyint={FPS}:scenecut=0"})
    a = av.CodecContext.create("libopus" if hevc_opus else "aac", "w")
    a.sample_rate, a.layout, a.format = 48000, "mono", "s16" if hevc_opus else "fltp"
    a.time_base = Fraction(1, 48000)
    a.open()
    units: list[AccessUnit] = []
    params: dict[int, bytes] = {}
    for i in range(int(seconds * FPS)):
        frame = av.VideoFrame(size[0], size[1], "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([i % 256]) * plane.buffer_size)
        frame.pts = int((start + i / FPS) * 90000)
        for p in v.encode(frame):
            assert p.pts is not None
            data = bytes(p)
            if hevc_opus:
                found, data = _split_parameter_sets(data)
                params.update(found)
            units.append(AccessUnit(1, "h265" if hevc_opus else "h264", p.pts, p.pts, 90000, p.is_keyframe, data,
                                    arrival=0.0))
    samples = 960 if hevc_opus else 1024
    for j in range(int(seconds * 48000 / samples)):
        frame = av.AudioFrame(format=a.format.name, layout="mono", samples=samples)
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.sample_rate = 48000
        frame.pts = int(start * 48000) + j * samples
        for p in a.encode(frame):
            assert p.pts is not None
            units.append(AccessUnit(2, "opus" if hevc_opus else "aac", p.pts, p.pts, 48000, True, bytes(p), arrival=0.0))
    units.sort(key=lambda u: u.dts / u.timebase)
    if hevc_opus:
        assert set(params) == {32, 33, 34}
        tracks = [TrackInfo(1, "h265", 90000, vps=params[32], sps=params[33], pps=params[34]),
                  TrackInfo(2, "opus", 48000, channels=1)]
    else:
        tracks = [TrackInfo(1, "h264", 90000, width=size[0], height=size[1]),
                  TrackInfo(2, "aac", 48000, config=bytes(a.extradata or b""), channels=1)]
    return tracks, units


def test_channel_packages_segments_parts_and_restarts(tmp_path: Path) -> None:
    settings = PackagingSettings(segment_seconds=2.0, part_seconds=0.5, live_window=3, live_retention=3)
    ch = Channel("cam", tmp_path, settings)
    tracks, units = access_units(9.0)
    ch.begin(tracks)
    for au in units:
        ch.push(au)
    ch.write()
    text = (tmp_path / "v0" / "index.m3u8").read_text()
    pl = m3u8.loads(text)
    assert pl.server_control.can_block_reload == "YES" and pl.part_inf.part_target == 0.5
    complete = [s for s in pl.segments if s.uri]
    assert len(complete) == 3 and pl.media_sequence == 2  # window of 3; segment 1 slid out
    assert all(abs(s.duration - 2.0) < 0.05 for s in complete)
    assert "INDEPENDENT=YES" in text and "#EXT-X-PRELOAD-HINT" in text
    assert all(p.duration <= 0.5 + 1e-6 for seg in pl.segments for p in seg.parts)
    assert not (tmp_path / "v0" / "seg-1.m4s").exists()  # past retention: deleted
    # Each segment is its parts back to back, and the timeline is continuous.
    seg2 = (tmp_path / "v0" / "seg-2.m4s").read_bytes()
    first = parse_fragment(seg2)
    assert first.tracks[0].decode_time == 2 * 90000  # 2 s on the access units' 90 kHz clock
    assert first.tracks[0].duration == 45000  # its first chunk is one 0.5 s part
    mpd = MPEGDASHParser.parse((tmp_path / "manifest.mpd").read_text())
    assert mpd.type == "dynamic"

    ch.finish()
    ch.write()
    ended = m3u8.loads((tmp_path / "v0" / "index.m3u8").read_text())
    assert ended.is_endlist
    last = [s for s in ended.segments if s.uri][-1]
    assert (tmp_path / "v0" / last.uri).exists()

    # The publisher comes back: same playlist, a discontinuity, a new init segment.
    tracks, units = access_units(5.0, start=100.0)
    ch.begin(tracks)
    for au in units:
        ch.push(au)
    ch.write()
    text = (tmp_path / "v0" / "index.m3u8").read_text()
    pl = m3u8.loads(text)
    assert not pl.is_endlist
    assert "#EXT-X-DISCONTINUITY\n" in text and 'URI="init-2.mp4"' in text
    numbers = [s.uri for s in pl.segments if s.uri]
    assert numbers == sorted(numbers, key=lambda u: int(u.split("-")[1].split(".")[0]))
    assert len(MPEGDASHParser.parse((tmp_path / "manifest.mpd").read_text()).periods) >= 1


def test_live_ladder_rungs_cut_with_the_source(tmp_path: Path) -> None:
    settings = PackagingSettings(segment_seconds=2.0, part_seconds=0.5, low_latency=False, live_window=10)
    ch = Channel("cam", tmp_path, settings)
    tracks, units = access_units(7.0, size=(128, 96))
    ladder = LiveLadder(parse_ladder("72p@100k"), tracks[0])
    ch.begin(tracks, ladder.tracks(128, 96))
    for au in units:
        ch.push(au)
        if au.track == 1:
            for out in ladder.process(au):
                ch.push(out)
    ch.finish()
    ch.write()
    master = m3u8.loads((tmp_path / "index.m3u8").read_text())
    assert sorted(p.stream_info.resolution for p in master.playlists) == [(96, 72), (128, 96)]
    source = m3u8.loads((tmp_path / "v0" / "index.m3u8").read_text())
    rung = m3u8.loads((tmp_path / "v1" / "index.m3u8").read_text())
    assert [round(s.duration, 2) for s in rung.segments[:-1]] == [round(s.duration, 2) for s in source.segments[:-1]]
    assert len(rung.segments) == len(source.segments) == 4


def test_hevc_and_opus_are_packaged_as_cmaf(tmp_path: Path) -> None:
    settings = PackagingSettings(segment_seconds=2.0, low_latency=False, live_window=10)
    ch = Channel("cam", tmp_path, settings)
    tracks, units = access_units(5.0, size=(128, 96), hevc_opus=True)
    assert not any(au.data.startswith(b"\x00\x00\x00\x01\x40") for au in units)  # no VPS in band
    ch.begin(tracks)
    for au in units:
        ch.push(au)
    ch.finish()
    ch.write()
    master = m3u8.loads((tmp_path / "index.m3u8").read_text())
    (variant,) = master.playlists
    video_codecs, audio_codecs = variant.stream_info.codecs.split(",")
    assert video_codecs.startswith("hvc1.1.") and audio_codecs == "opus"
    assert variant.stream_info.resolution == (128, 96) and variant.stream_info.frame_rate == FPS
    init = (tmp_path / "v0" / "init-1.mp4").read_bytes()
    assert b"hvc1" in init and b"hvcC" in init and b"dOps" in (tmp_path / "a0" / "init-1.mp4").read_bytes()
    # The init segment and the media segments decode back, every frame.
    for rid, kind in (("v0", "video"), ("a0", "audio")):
        pl = m3u8.loads((tmp_path / rid / "index.m3u8").read_text())
        blob = (tmp_path / rid / "init-1.mp4").read_bytes() + b"".join(
            (tmp_path / rid / seg.uri).read_bytes() for seg in pl.segments)
        with av.open(io.BytesIO(blob)) as container:
            decoded = sum(1 for _ in container.decode(**{kind: 0}))
        # Everything from the first video keyframe on (libopus's first packet starts before it).
        sent = [au for au in units if au.track == (1 if kind == "video" else 2) and au.dts >= 0]
        assert decoded == len(sent), (rid, decoded)


def test_audio_only_stream_cuts_on_time(tmp_path: Path) -> None:
    ch = Channel("radio", tmp_path, PackagingSettings(segment_seconds=2.0, low_latency=False))
    tracks, units = access_units(7.0)
    ch.begin([tracks[1]])
    for au in units:
        if au.track == 2:
            ch.push(au)
    ch.finish()
    ch.write()
    master = m3u8.loads((tmp_path / "index.m3u8").read_text())
    assert master.playlists[0].stream_info.codecs == "mp4a.40.2"
    media = m3u8.loads((tmp_path / "a0" / "index.m3u8").read_text())
    assert [round(s.duration) for s in media.segments][:3] == [2, 2, 2]


async def test_stream_tap_is_not_a_viewer_and_ends_with_the_publisher() -> None:
    import asyncio

    import pytest

    from hivecast.media.live import LiveRegistry, StreamEnded
    from hivecast.media.packaging.tap import StreamTap

    registry = LiveRegistry()
    tracks, units = access_units(4.0)  # keyframes every 30 frames
    publisher = registry.publish("cam", tracks)
    stream = registry.get("cam")
    tap = StreamTap(stream, maxlen=40)
    assert stream.readers == 0  # the packager does not count as a viewer
    video = [u for u in units if u.track == 1]
    for au in video[:30]:
        publisher.send(au)
    got = [await tap.get() for _ in range(30)]
    assert [u.dts for u in got] == [u.dts for u in video[:30]]
    for au in video[30:]:  # 90 more: the queue (40) overflows, drops, and resumes on a keyframe
        publisher.send(au)
    async with asyncio.timeout(5):
        first = await tap.get()
    assert first.keyframe and tap.dropped > 0
    publisher.close()
    with pytest.raises(StreamEnded):
        async with asyncio.timeout(5):
            while True:
                await tap.get()


def test_nominal_frame_rate() -> None:
    assert nominal_frame_rate(30.0) == 30.0 and nominal_frame_rate(29.97) == 29.97
    assert nominal_frame_rate(30000 / 1001 + 0.01) == 29.97 and nominal_frame_rate(24.99) == 25.0
    assert nominal_frame_rate(12.5) == 12.5 and nominal_frame_rate(27.3) == 27.3
