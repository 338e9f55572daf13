"""Live packaging end to end: ffmpeg publishes over RTSP into a node; HLS/DASH come out of /live/NAME/."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
from typing import Any

import av
import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from hivecast.media.abr.manifest import parse_dash
from hivecast.media.abr.player import play
from hivecast.media.packaging.bmff import iter_boxes, parse_fragment
from hivecast.node import Node
from tests.conftest import NodeFactory, node_url

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SEGMENT = 2.0


def publish(ffmpeg_exe: str, node: Node, name: str, seconds: float) -> subprocess.Popen[bytes]:
    url = f"rtsp://127.0.0.1:{node.services['rtsp_port']}/{name}"
    return subprocess.Popen(
        [ffmpeg_exe, "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "rtsp", "-rtsp_transport", "tcp", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def get_playlist(client: httpx.AsyncClient, url: str) -> tuple[Any, float]:
    resp = await client.get(url)
    return (m3u8.loads(resp.text) if resp.status_code == 200 else None), time.time()


def edge_lag(pl: Any, fetched: float, parts: bool) -> float | None:
    """Seconds between the fetch and the wall clock of the newest media in the playlist."""
    pdt = None
    t = 0.0
    for seg in pl.segments:
        if seg.program_date_time is not None:
            pdt = seg.program_date_time.timestamp()
            t = 0.0
        if seg.uri is not None:
            t += seg.duration
        elif parts:
            t += sum(p.duration for p in seg.parts)
    if pdt is None:
        return None
    return fetched - (pdt + t)


def publisher_position(node: Node, name: str) -> float:
    """Media time (s) of the end of the newest video access unit the publisher has delivered."""
    stream = node.services["live_registry"].get(name)
    units = [u for u in stream.gop_snapshot() if u.codec == "h264"]
    newest = max(units, key=lambda u: u.dts)
    return float(newest.dts / newest.timebase + 1 / 30)


async def listed_edge(client: httpx.AsyncClient, folder: str, pl: Any, parts: bool, node: Node, name: str) -> float:
    """Media time (s) where the newest listed segment (or part) ends, from its own moof boxes."""
    last = pl.segments[-1]
    uri = last.parts[-1].uri if parts and last.parts else last.uri
    if uri is None:
        uri = pl.segments[-2].uri
    data = (await client.get(folder + uri)).content
    channel = node.services["live_packager"].channels[name]
    timescale = channel.presentation.renditions[0].timescale
    end = 0
    for box in iter_boxes(data):
        if box.type == b"moof":
            frag = parse_fragment(data[box.start:])
            end = max(end, frag.tracks[0].decode_time + frag.tracks[0].duration)
    return float(end / timescale + channel.origin - channel.base)


async def wait_for(predicate: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def wait_segments(client: httpx.AsyncClient, url: str, count: int, timeout: float) -> None:
    async def listed() -> bool:
        resp = await client.get(url)
        return resp.status_code == 200 and resp.text.count("#EXTINF") >= count
    await wait_for(listed, timeout)


@pytest.mark.parametrize("low_latency", [False, True])
async def test_live_hls_and_dash(node_factory: NodeFactory, ffmpeg_exe: str, low_latency: bool) -> None:
    node = await node_factory(open_publish=True, packaging={"segment_seconds": SEGMENT, "part_seconds": 0.5,
                                                            "low_latency": low_latency, "live_window": 3,
                                                            "live_retention": 3,
                                                            # the standard run also transcodes a 90p rung
                                                            "live_ladder": [] if low_latency else ["90p"]})
    proc = publish(ffmpeg_exe, node, "cam", 120)
    base = node_url(node, "/live/cam/")
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            await wait_segments(client, base + "v0/index.m3u8", 2, 20)
            recorded = node.bus.subscribe("vod.*")
            node.services["live_packager"].start_recording("cam", "rec1")

            # Latency: the newest media listed trails the wall clock by at most one segment + 1 s
            # (LL-HLS: 1.5 s), sampled over a few reloads (blocking reloads for LL-HLS).
            # Measured two ways: wall clock against PROGRAM-DATE-TIME, and packet timestamps: the
            # newest video access unit the publisher has delivered against the end of the newest
            # media the playlist lists (tfdt + durations read back from the listed file).
            lags, media_lags = [], []
            for _ in range(6):
                pl, fetched = await get_playlist(client, base + "v0/index.m3u8")
                publisher = publisher_position(node, "cam")
                lag = edge_lag(pl, fetched, low_latency)
                assert lag is not None
                lags.append(lag)
                media_lags.append(publisher - await listed_edge(client, base + "v0/", pl, low_latency, node, "cam"))
                await asyncio.sleep(0.4)
            bound = 1.5 if low_latency else SEGMENT + 1.0
            assert max(lags) <= bound, lags
            assert max(media_lags) <= bound, media_lags

            master = m3u8.loads((await client.get(base + "index.m3u8")).text)
            assert master.media
            sizes = sorted(p.stream_info.resolution for p in master.playlists)
            assert sizes == ([(320, 180)] if low_latency else [(160, 90), (320, 180)])
            mpd_text = (await client.get(base + "manifest.mpd")).text
            mpd = MPEGDASHParser.parse(mpd_text)
            assert mpd.type == "dynamic" and mpd.utc_timings
            assert (await client.get(node_url(node, "/live/_time"))).status_code == 200

            for url in (base + "index.m3u8", base + "manifest.mpd"):
                run = await asyncio.to_thread(
                    subprocess.run, [ffmpeg_exe, "-v", "error", "-i", url, "-t", "3", "-map", "0", "-f", "null", "-"],
                    capture_output=True, text=True, timeout=60)
                assert run.returncode == 0 and run.stderr.strip() == "", run.stderr

            # PyAV decodes live HLS video and audio too.
            def decode_live(url: str) -> tuple[int, int]:
                video = audio = 0
                with av.open(url, timeout=20) as container:
                    for frame in container.decode(video=0, audio=0):
                        if isinstance(frame, av.VideoFrame):
                            video += 1
                        else:
                            audio += 1
                        if video >= 60 and audio >= 20:
                            break
                return video, audio
            video, audio = await asyncio.to_thread(decode_live, base + "index.m3u8")
            assert video >= 60 and audio >= 20
            # PyAV's wheels have no DASH demuxer: resolve the live MPD (our player's reader) and hand
            # PyAV each representation's init segment and media segments, as a DASH client does.
            pres = parse_dash((await client.get(base + "manifest.mpd")).text, base + "manifest.mpd")
            for rep in [pres.variants[-1], *([pres.audio] if pres.audio else [])]:
                assert rep.init_url is not None and rep.segments
                blob = bytearray((await client.get(rep.init_url)).content)
                for seg in rep.segments[-2:]:
                    resp = await client.get(seg.url)
                    assert resp.status_code == 200
                    blob += resp.content

                def decode_blob(data: bytes) -> int:
                    with av.open(io.BytesIO(data)) as container:
                        return sum(1 for _ in container.decode(container.streams[0]))
                assert await asyncio.to_thread(decode_blob, bytes(blob)) > 0, rep.id

            # Our ABR client plays the live presentation too (HLS and DASH).
            for manifest in ("index.m3u8", "manifest.mpd"):
                async with asyncio.timeout(60):
                    report = await play(base + manifest, max_media_seconds=3.0)
                assert report.played >= 2.0 and report.segments, (manifest, report.summary())

            if low_latency:
                pl = m3u8.loads((await client.get(base + "v0/index.m3u8")).text)
                assert pl.server_control.can_block_reload == "YES"
                last = pl.media_sequence + len([s for s in pl.segments if s.uri]) - 1
                started = time.monotonic()
                resp = await client.get(base + f"v0/index.m3u8?_HLS_msn={last + 1}&_HLS_part=0")
                assert resp.status_code == 200
                assert f"seg-{last + 1}.0.m4s" in resp.text
                assert time.monotonic() - started < 5
                assert (await client.get(base + f"v0/index.m3u8?_HLS_msn={last + 10}")).status_code == 400
                # The preload hint is answered when the part exists, not with a 404.
                hinted = m3u8.loads((await client.get(base + "v0/index.m3u8")).text).preload_hint.uri
                resp = await client.get(base + "v0/" + hinted)
                assert resp.status_code == 200 and resp.content[4:8] == b"moof"
                assert resp.headers["cache-control"] == "public, max-age=86400"
            else:
                # A request for the segment being cut is held until it closes (ffmpeg's DASH reader
                # asks for it early), and one further ahead gets its 404 at once.
                pl = m3u8.loads((await client.get(base + "v0/index.m3u8")).text)
                cutting = pl.media_sequence + len(pl.segments)
                resp = await client.get(base + f"v0/seg-{cutting}.m4s")
                assert resp.status_code == 200 and resp.content[4:8] == b"moof"
                assert (await client.get(base + f"v0/seg-{cutting + 2}.m4s")).status_code == 404

            async def slid() -> bool:
                resp = await client.get(base + "v0/index.m3u8")
                return m3u8.loads(resp.text).media_sequence > 1
            await wait_for(slid, 20)
            # The publisher stops mid-segment (whenever we get here): the playlist stays valid and ends.
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)

            async def ended() -> bool:
                resp = await client.get(base + "v0/index.m3u8")
                return "#EXT-X-ENDLIST" in resp.text
            await wait_for(ended, 15)
            final = m3u8.loads((await client.get(base + "v0/index.m3u8")).text)
            for seg in final.segments:
                assert (await client.get(base + "v0/" + seg.uri)).status_code == 200
            # The recording was finished when the publisher left: an on-demand video under /vod/rec1/.
            async with asyncio.timeout(10):
                event = await recorded.get()
            recorded.close()
            assert event.topic == "vod.packaged" and event.data["id"] == "rec1", event
            rec = m3u8.loads((await client.get(node_url(node, "/vod/rec1/v0/index.m3u8"))).text)
            assert rec.is_endlist and sum(s.duration for s in rec.segments) >= 2 * SEGMENT
            for manifest in ("index.m3u8", "manifest.mpd"):
                run = await asyncio.to_thread(
                    subprocess.run, [ffmpeg_exe, "-v", "error", "-i", node_url(node, f"/vod/rec1/{manifest}"),
                                     "-map", "0", "-f", "null", "-"], capture_output=True, text=True, timeout=60)
                assert run.returncode == 0 and run.stderr.strip() == "", run.stderr

            # Aged-out segments: 404, not a crash.
            assert final.media_sequence > 1
            assert (await client.get(base + "v0/seg-1.m4s")).status_code == 404

            # A restart continues the playlist after a discontinuity.
            proc = publish(ffmpeg_exe, node, "cam", 6)

            async def restarted() -> bool:
                resp = await client.get(base + "v0/index.m3u8")
                pl = m3u8.loads(resp.text)
                return not pl.is_endlist and any(s.discontinuity and s.uri for s in pl.segments)
            await wait_for(restarted, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _has_encoders(ffmpeg_exe: str, *names: str) -> bool:
    listed = subprocess.run([ffmpeg_exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20)
    return all(f" {name} " in listed.stdout for name in names)


def publish_hevc_opus(ffmpeg_exe: str, url: str, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ffmpeg_exe, "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx265", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         "-x265-params", "log-level=error:bframes=0", "-c:a", "libopus", "-b:a", "64k",
         "-f", "rtsp", "-rtsp_transport", "tcp", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_rtsp_hevc_and_opus_decode_from_hls_and_dash(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    """H.265 + Opus over RTSP (parameter sets in the SDP only) are packaged as CMAF: hvc1 and Opus."""
    if not _has_encoders(ffmpeg_exe, "libx265", "libopus"):
        pytest.skip("ffmpeg has no libx265 or libopus encoder")
    # The source passes through as the top rung; a 120p H.264 rung is transcoded from it (sized from
    # the HEVC SPS the SDP carried).
    node = await node_factory(open_publish=True, packaging={"segment_seconds": 2.0, "live_ladder": ["120p"]})
    url = f"rtsp://127.0.0.1:{node.services['rtsp_port']}/hevc"
    proc = publish_hevc_opus(ffmpeg_exe, url, 25)
    base = node_url(node, "/live/hevc/")
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            await wait_segments(client, base + "a0/index.m3u8", 3, 30)
            master = m3u8.loads((await client.get(base + "index.m3u8")).text)
            variants = {p.stream_info.resolution: p.stream_info.codecs.split(",") for p in master.playlists}
            assert set(variants) == {(320, 240), (160, 120)}, variants
            source, rung = variants[(320, 240)], variants[(160, 120)]
            assert source[0].startswith("hvc1.1.6.L") and source[1] == "opus", source
            assert rung[0].startswith("avc1.") and rung[1] == "opus", rung
            mpd = MPEGDASHParser.parse((await client.get(base + "manifest.mpd")).text)
            reps = [r for a in mpd.periods[0].adaptation_sets for r in a.representations]
            assert sorted(r.codecs for r in reps) == sorted({*source, rung[0]})
        for manifest in ("index.m3u8", "manifest.mpd"):
            run = await asyncio.to_thread(
                subprocess.run, [ffmpeg_exe, "-v", "error", "-i", base + manifest, "-t", "5", "-map", "0",
                                 "-f", "null", "-"], capture_output=True, text=True, timeout=60)
            assert run.returncode == 0 and run.stderr.strip() == "", (manifest, run.stderr)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
