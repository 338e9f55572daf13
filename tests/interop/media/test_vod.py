"""On-demand packaging end to end: a real file, a 3-rung ladder, a real node, ffmpeg and PyAV as players."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path
from typing import Any

import av
import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from hivecast.node import Node
from tests.conftest import NodeFactory, node_url
from tests.interop.media.conftest import MakeMedia

pytestmark = [pytest.mark.interop]

FRAME = 1 / 30


async def wait_event(node: Node, video_id: str, timeout: float = 120.0) -> tuple[str, dict[str, Any]]:
    sub = node.bus.subscribe("vod.*")
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await sub.get()
                if event.data.get("id") == video_id and event.topic in ("vod.packaged", "vod.failed"):
                    return event.topic, event.data
    finally:
        sub.close()


async def package(node: Node, video_id: str, source: Path, ladder: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    waiter = asyncio.ensure_future(wait_event(node, video_id))
    await asyncio.sleep(0)
    await node.services["packager"].submit(video_id, source, ladder=ladder)
    return await waiter


@pytest.mark.slow
async def test_thirty_seconds_with_a_ladder(node_factory: NodeFactory, make_media: MakeMedia, ffmpeg_exe: str) -> None:
    source = make_media("thirty.mp4", seconds=30, size="426x240", gop=60)
    node = await node_factory()
    progress = node.bus.subscribe("vod.progress")
    topic, data = await package(node, "thirty", source, ladder=["240p", "180p", "144p"])
    assert topic == "vod.packaged", data
    assert "index.m3u8" in data["files"] and "manifest.mpd" in data["files"]
    percents = []
    while (ev := progress._queue.popleft() if progress._queue else None) is not None:
        percents.append(ev.data["percent"])
    progress.close()
    assert percents and percents == sorted(percents)

    base = node_url(node, "/vod/thirty/")
    async with httpx.AsyncClient(timeout=30) as client:
        master_resp = await client.get(base + "index.m3u8")
        assert master_resp.status_code == 200
        assert master_resp.headers["content-type"] == "application/vnd.apple.mpegurl"
        master = m3u8.loads(master_resp.text)
        assert len(master.playlists) == 3  # the source (240p) plus the 180p and 144p rungs
        audio_uri = master.media[0].uri
        audio = m3u8.loads((await client.get(base + audio_uri)).text)
        audio_bytes = [len((await client.get(base + audio_uri.rsplit("/", 1)[0] + "/" + s.uri)).content)
                       for s in audio.segments]
        audio_seconds = sum(s.duration for s in audio.segments)
        for variant in master.playlists:
            text = (await client.get(base + variant.uri)).text
            media = m3u8.loads(text)
            durations = [s.duration for s in media.segments]
            assert abs(sum(durations) - 30.0) <= FRAME + 1e-6, (variant.uri, sum(durations))
            assert all(d <= 4.0 + 1e-6 for d in durations)
            assert all(round(d) <= media.target_duration for d in durations)
            folder = variant.uri.rsplit("/", 1)[0]
            sizes = [len((await client.get(f"{base}{folder}/{s.uri}")).content) for s in media.segments]
            measured_avg = (sum(sizes) * 8 / sum(durations)) + sum(audio_bytes) * 8 / audio_seconds
            measured_peak = max(sz * 8 / d for sz, d in zip(sizes, durations, strict=True))
            info = variant.stream_info
            assert abs(info.average_bandwidth - measured_avg) <= 0.10 * measured_avg
            audio_peak = max(sz * 8 / s.duration for sz, s in zip(audio_bytes, audio.segments, strict=True))
            assert abs(info.bandwidth - (measured_peak + audio_peak)) <= 0.10 * (measured_peak + audio_peak)
        mpd = MPEGDASHParser.parse((await client.get(base + "manifest.mpd")).text)
        assert mpd.type == "static"
        reps = mpd.periods[0].adaptation_sets[0].representations
        assert len(reps) == 3

    # Real players: ffmpeg and PyAV decode every stream of both presentations without an error.
    for url in (base + "index.m3u8", base + "manifest.mpd"):
        run = await asyncio.to_thread(
            subprocess.run, [ffmpeg_exe, "-v", "error", "-i", url, "-map", "0", "-f", "null", "-"],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    def decode(source: Any) -> tuple[int, int]:
        with av.open(source, timeout=20) as container:
            v = a = 0
            wanted = {k: 0 for k, streams in (("video", container.streams.video), ("audio", container.streams.audio)) if streams}
            for frame in container.decode(**wanted):
                if isinstance(frame, av.VideoFrame):
                    v += 1
                else:
                    a += 1
            return v, a
    videos, audios = await asyncio.to_thread(decode, base + "index.m3u8")
    assert videos >= 30 * 30 - 1 and audios > 0, (videos, audios)
    # PyAV's wheels have no DASH demuxer (FFmpeg built without libxml2), so play DASH as a DASH
    # client does: resolve the MPD's SegmentTemplate and hand PyAV init + media segments.
    async with httpx.AsyncClient(timeout=30) as client:
        for aset in mpd.periods[0].adaptation_sets:
            for rep in aset.representations:
                tmpl = rep.segment_templates[0]
                count = sum((s.r or 0) + 1 for s in tmpl.segment_timelines[0].Ss)
                blob = bytearray((await client.get(base + tmpl.initialization)).content)
                for number in range(tmpl.start_number, tmpl.start_number + count):
                    resp = await client.get(base + tmpl.media.replace("$Number$", str(number)))
                    assert resp.status_code == 200
                    blob += resp.content
                videos, audios = await asyncio.to_thread(decode, io.BytesIO(bytes(blob)))
                if aset.content_type == "video":
                    assert videos >= 30 * 30 - 1, (rep.id, videos)
                else:
                    assert audios > 0


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "no-video", "unsupported-codec"])
async def test_bad_input_fails_cleanly(node_factory: NodeFactory, make_media: MakeMedia, tmp_path: Path,
                                       kind: str) -> None:
    if kind == "corrupt":
        source = tmp_path / "corrupt.mp4"
        source.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40)
    elif kind == "truncated":
        whole = make_media("short.mp4", seconds=2).read_bytes()
        source = tmp_path / "truncated.mp4"
        source.write_bytes(whole[: len(whole) // 2])
    elif kind == "no-video":
        source = make_media("audio-only.m4a", seconds=2, video=False)
    else:
        source = make_media("mpeg4.mp4", seconds=2, vcodec="mpeg4")
    node = await node_factory()
    topic, data = await package(node, "bad", source)
    assert topic == "vod.failed"
    expected = {"corrupt": "not a media file", "truncated": "not a media file", "no-video": "no video stream",
                "unsupported-codec": "unsupported video codec"}[kind]
    assert expected in data["error"]
    vod = node.settings.media_dir / "vod"
    assert list(vod.iterdir()) == []  # nothing half-written, not even hidden
    assert node.services["packager"].status("bad")["state"] == "failed"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(node_url(node, "/vod/bad/index.m3u8"))).status_code == 404


async def test_classic_hls_with_mpeg_ts(make_media: MakeMedia, tmp_path: Path, ffmpeg_exe: str) -> None:
    from hivecast.media.packaging.vod import package_file

    source = make_media("short.mp4", seconds=2)
    out = tmp_path / "ts"
    result = await asyncio.to_thread(package_file, source, out, ladder="90p", segment_seconds=1.0,
                                     formats={"hls", "ts"})
    assert "index-ts.m3u8" in result.files and "v0/seg-1.ts" in result.files
    master = m3u8.loads((out / "index-ts.m3u8").read_text())
    assert len(master.playlists) == 2 and not master.media  # audio is muxed into each variant
    for variant in master.playlists:
        media = m3u8.loads((out / variant.uri).read_text())
        assert media.segment_map == [] or not media.segment_map  # no EXT-X-MAP with MPEG-TS
        assert abs(sum(s.duration for s in media.segments) - 2.0) <= FRAME + 1e-6
    run = await asyncio.to_thread(
        subprocess.run, [ffmpeg_exe, "-v", "error", "-i", str(out / "index-ts.m3u8"), "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


async def test_hevc_passes_through_as_hvc1(make_media: MakeMedia, tmp_path: Path, ffmpeg_exe: str) -> None:
    from hivecast.media.packaging.vod import package_file

    source = make_media("hevc.mp4", seconds=2, vcodec="libx265")
    out = tmp_path / "hevc"
    result = await asyncio.to_thread(package_file, source, out, segment_seconds=1.0)
    assert result.renditions[0]["codecs"].startswith("hvc1.")
    master = m3u8.loads((out / "index.m3u8").read_text())
    assert master.playlists[0].stream_info.codecs.startswith("hvc1.")
    run = await asyncio.to_thread(
        subprocess.run, [ffmpeg_exe, "-v", "error", "-i", str(out / "index.m3u8"), "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


def _semaphore_names(*queues: Any) -> list[str]:
    """The named POSIX semaphores behind multiprocessing queues (their locks and bound)."""
    names = []
    for q in queues:
        for attr in ("_rlock", "_wlock", "_sem"):
            lock = getattr(q, attr, None)
            name = getattr(getattr(lock, "_semlock", None), "name", None)
            if name:
                names.append(name)
    return names


SHM = Path("/dev/shm")


def _present(names: list[str]) -> list[str]:
    """Those of the semaphores that still exist (Linux shows each as /dev/shm/sem.NAME)."""
    return [n for n in names if (SHM / f"sem.{n.lstrip('/')}").exists()]


@pytest.mark.skipif(not SHM.is_dir(), reason="named semaphores are not visible in /dev/shm here")
async def test_stopping_mid_job_ends_workers_and_releases_semaphores(
        node_factory: NodeFactory, make_media: MakeMedia) -> None:
    source = make_media("long.mp4", seconds=30, size="1280x720")
    node = await node_factory()
    service = node.services["packager"]
    events = node.bus.subscribe("vod.*")
    await service.submit("midjob", source, ladder=["480p", "240p"])
    async with asyncio.timeout(60):
        while (await events.get()).topic != "vod.progress":
            pass
    processes = list(service._pool._processes.values())
    names = _semaphore_names(service._queue, service._pool._call_queue, service._pool._result_queue)
    assert processes and names and _present(names) == names

    await service.stop()
    assert all(not p.is_alive() for p in processes)
    assert _present(names) == []
    async with asyncio.timeout(10):
        while (event := await events.get()).topic != "vod.failed":
            pass
    events.close()
    assert event.data == {"id": "midjob", "error": "the node stopped before the job finished"}
    vod = node.settings.media_dir / "vod"
    assert not (vod / "midjob").exists() and not list(vod.glob(".midjob.*"))
