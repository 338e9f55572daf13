"""ffmpeg publishes over RTMP and reads back over RTMP, HTTP-FLV and RTSP; Enhanced RTMP HEVC."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest

from tests.conftest import NodeFactory, node_url
from tests.interop.rtmp.helpers import H264, decode, finish, publish_rtmp, rtmp_url, start_ffmpeg, wait_live

pytestmark = [pytest.mark.interop]


async def test_h264_aac_rtmp_in_rtmp_and_httpflv_out(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    qos = node.bus.subscribe("stream.qos")
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "cam1"), 9)
    try:
        stream = await wait_live(node, "cam1")
        assert {t.codec for t in stream.tracks} == {"h264", "aac"}
        (rc1, frames1, err1), (rc2, frames2, err2) = await asyncio.gather(
            decode(ffmpeg_exe, rtmp_url(node, "cam1"), 5),
            decode(ffmpeg_exe, node_url(node, "/live/cam1.flv"), 5))
        assert rc1 == 0 and not err1, err1
        assert rc2 == 0 and not err2, err2
        assert frames1 >= 120 and frames2 >= 120  # 5 s at 25 fps, less the odd frame at the edges
        info = node.services["live_registry"].info("cam1")
        assert info["qos"].get("protocol") == "rtmp" and info["qos"]["bitrate_kbps"] > 0
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(node_url(node, "/metrics"))).text
        assert "hivecast_rtmp_publishers 1.0" in metrics and "hivecast_flv_messages" in metrics
        assert 'hivecast_rtmp_stream_fps{stream="cam1"}' in metrics
        roles = {s["role"] for s in node.services["rtmp_server"].sessions()}
        assert "publisher" in roles
        # The registry publishes its own stream.qos events too: wait for the RTMP publisher's.
        async with asyncio.timeout(10):
            while "fps" not in (event := await qos.get()).data:
                pass
        assert event.data["name"] == "cam1" and event.data["fps"] > 0
    finally:
        rc, err = await finish(pub, 30)
    assert rc == 0, err


async def test_rtmp_in_rtsp_out_and_rtsp_in_rtmp_out(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    if "rtsp_port" not in node.services:
        pytest.skip("this node has no RTSP server")
    rtsp = f"rtsp://127.0.0.1:{node.services['rtsp_port']}"
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "a"), 8)
    pub2 = await start_ffmpeg(ffmpeg_exe, "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                              "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
                              "-t", "8", *H264, "-f", "rtsp", "-rtsp_transport", "tcp", f"{rtsp}/b")
    try:
        await wait_live(node, "a")
        await wait_live(node, "b")
        results = await asyncio.gather(
            decode(ffmpeg_exe, f"{rtsp}/a", 4, "-rtsp_transport", "tcp"),
            decode(ffmpeg_exe, rtmp_url(node, "b"), 4),
            decode(ffmpeg_exe, node_url(node, "/live/b.flv"), 4))
        for rc, frames, err in results:
            assert rc == 0 and not err, err
            assert frames >= 90
    finally:
        await finish(pub, 30)
        await finish(pub2, 30)


def _enhanced_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:
        return None
    # FFmpeg writes HEVC in FLV as Enhanced RTMP since 6.1; the static build imageio-ffmpeg ships is newer.
    enc = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20)
    ver = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20).stdout.split()
    major = ver[2].lstrip("n").split(".")[0] if len(ver) > 2 else "0"
    if "libx265" not in enc.stdout or not major.isdigit() or int(major) < 7:
        return None
    return exe


async def test_enhanced_rtmp_hevc(node_factory: NodeFactory) -> None:
    exe = _enhanced_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg with libx265 and Enhanced RTMP (FLV HEVC) support")
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    codec = ["-c:v", "libx265", "-preset", "ultrafast", "-g", "25", "-x265-params", "log-level=error",
             "-c:a", "aac", "-b:a", "64k"]
    pub = await publish_rtmp(exe, rtmp_url(node, "hevc"), 9, codec)
    try:
        stream = await wait_live(node, "hevc")
        assert {t.codec for t in stream.tracks} == {"h265", "aac"}
        reads = [decode(exe, rtmp_url(node, "hevc"), 5), decode(exe, node_url(node, "/live/hevc.flv"), 5)]
        if "rtsp_port" in node.services:
            reads.append(decode(exe, f"rtsp://127.0.0.1:{node.services['rtsp_port']}/hevc", 5, "-rtsp_transport", "tcp"))
        for rc, frames, err in await asyncio.gather(*reads):
            assert rc == 0 and not err, err
            assert frames >= 120
    finally:
        await finish(pub, 30)


async def test_wrong_key_is_refused(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(rtmp={"port": 0, "publish_keys": {"cam": "s3cret"}})
    bad = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "cam?key=wrong"), 3)
    rc, err = await finish(bad, 20)
    assert rc != 0 and "bad stream key" in err  # ffmpeg prints the description of NetStream.Publish.Denied
    assert node.services["live_registry"].get("cam") is None
    # OBS style: the key in place of the name maps to the stream it belongs to.
    good = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "s3cret"), 6)
    try:
        await wait_live(node, "cam")
        busy = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "cam?key=s3cret"), 3)
        rc, err = await finish(busy, 20)
        assert rc != 0 and "already published" in err  # NetStream.Publish.BadName
    finally:
        await finish(good, 30)


async def test_enhanced_rtmp_opus_audio(node_factory: NodeFactory) -> None:
    exe = _enhanced_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg with Enhanced RTMP support")
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "libopus", "-b:a", "48k"]
    pub = await publish_rtmp(exe, rtmp_url(node, "opus"), 8, codec)
    try:
        stream = await wait_live(node, "opus")
        assert {t.codec for t in stream.tracks} == {"h264", "opus"}
        for rc, frames, err in await asyncio.gather(decode(exe, rtmp_url(node, "opus"), 4),
                                                    decode(exe, node_url(node, "/live/opus.flv"), 4)):
            assert rc == 0 and not err, err
            assert frames >= 90
    finally:
        await finish(pub, 30)
