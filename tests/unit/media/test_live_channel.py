"""The live packaging core fed with synthetic access units (H.264 Annex-B from libx264, raw AAC): no network."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import m3u8
from mpegdash.parser import MPEGDASHParser

from hivecast.config.settings import PackagingSettings
from hivecast.media.live import AccessUnit, TrackInfo
from hivecast.media.packaging.bmff import parse_fragment
from hivecast.media.packaging.ladder import parse_ladder
from hivecast.media.packaging.livepackager import Channel
from hivecast.media.packaging.livetranscode import LiveLadder

FPS = 30


def access_units(seconds: float, start: float = 0.0, size: tuple[int, int] = (64, 48)
                 ) -> tuple[list[TrackInfo], list[AccessUnit]]:
    v = av.CodecContext.create("libx264", "w")
    (v.width, v.height), v.pix_fmt = size, "yuv420p"
    v.time_base = Fraction(1, 90000)
    v.framerate = FPS
    v.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": f"keyint={FPS}:scenecut=0"}
    a = av.CodecContext.create("aac", "w")
    a.sample_rate, a.layout, a.format = 48000, "mono", "fltp"
    a.time_base = Fraction(1, 48000)
    a.open()
    units: list[AccessUnit] = []
    for i in range(int(seconds * FPS)):
        frame = av.VideoFrame(size[0], size[1], "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([i % 256]) * plane.buffer_size)
        frame.pts = int((start + i / FPS) * 90000)
        for p in v.encode(frame):
            assert p.pts is not None
            units.append(AccessUnit(1, "h264", p.pts, p.pts, 90000, p.is_keyframe, bytes(p), arrival=0.0))
    samples = 1024
    for j in range(int(seconds * 48000 / samples)):
        frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
        frame.planes[0].update(bytes(samples * 4))
        frame.sample_rate = 48000
        frame.pts = int(start * 48000) + j * samples
        for p in a.encode(frame):
            assert p.pts is not None
            units.append(AccessUnit(2, "aac", p.pts, p.pts, 48000, True, bytes(p), arrival=0.0))
    units.sort(key=lambda u: u.dts / u.timebase)
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
