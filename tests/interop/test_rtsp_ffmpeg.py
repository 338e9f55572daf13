"""Interop with real ffmpeg: publish over TCP and UDP, read back over UDP and TCP and decode both streams.

The publisher encodes a small synthetic stream live (320x240@25 ultrafast + AAC) for a bounded time;
readers decode five seconds with `-f framemd5`, which proves every frame decoded and tells how much
of each stream arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hivecast.node import Node

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def rtsp_url(node: Node, name: str, query: str = "") -> str:
    return f"rtsp://127.0.0.1:{node.services['rtsp_port']}/{name}{query}"


async def start_publisher(ffmpeg: str, url: str, transport: str, seconds: float = 14,
                          video: tuple[str, ...] = ("libx264", "-tune", "zerolatency"),
                          audio: tuple[str, ...] = ("aac", "-b:a", "64k")) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-v", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", *video, "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
        "-c:a", *audio, "-f", "rtsp", "-rtsp_transport", transport, url,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await proc.wait()


async def wait_live(node: Node, name: str, limit: float = 15) -> None:
    registry = node.services["live_registry"]
    async with asyncio.timeout(limit):
        while True:
            stream = registry.get(name)
            if stream is not None and stream.units > 10:
                return
            await asyncio.sleep(0.1)


async def read_with_ffmpeg(ffmpeg: str, url: str, transport: str, seconds: float = 5) -> dict[str, Any]:
    """Decode `seconds` of the stream; return exit code, stderr and per-stream decoded durations."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-v", "error", "-rtsp_transport", transport, "-i", url,
        "-map", "0:v:0", "-map", "0:a:0", "-t", str(seconds), "-f", "framemd5", "-",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(40):
            out, err = await proc.communicate()
    finally:
        await stop(proc)
    durations: dict[int, float] = {}
    frames: dict[int, int] = {}
    timebases: dict[int, float] = {}
    for line in out.decode().splitlines():
        if line.startswith("#tb "):
            idx, _, tb = line[4:].partition(":")
            num, den = tb.strip().split("/")
            timebases[int(idx)] = int(num) / int(den)
        elif line and not line.startswith("#"):
            parts = [p.strip() for p in line.split(",")]
            idx = int(parts[0])
            durations[idx] = durations.get(idx, 0.0) + int(parts[3]) * timebases.get(idx, 0.0)
            frames[idx] = frames.get(idx, 0) + 1
    return {"rc": proc.returncode, "stderr": err.decode(errors="replace"), "durations": durations, "frames": frames}


def assert_decoded(result: dict[str, Any], seconds: float = 5) -> None:
    assert result["rc"] == 0, result["stderr"]
    assert result["stderr"].strip() == "", result["stderr"]
    video, audio = result["durations"].get(0, 0.0), result["durations"].get(1, 0.0)
    # framemd5 stops at -t: both streams must have decoded (nearly) the whole span.
    assert video >= seconds - 0.25 and audio >= seconds - 0.25, result["durations"]


@pytest.fixture
async def live_node(node_factory: Any) -> AsyncIterator[Node]:
    yield await node_factory(open_publish=True)


@pytest.mark.parametrize("publish_transport", ["tcp", "udp"])
async def test_publish_then_read_over_udp_and_tcp(live_node: Node, ffmpeg_exe: str, publish_transport: str) -> None:
    url = rtsp_url(live_node, "live/cam")
    publisher = await start_publisher(ffmpeg_exe, url, publish_transport)
    try:
        await wait_live(live_node, "live/cam")
        udp, tcp = await asyncio.gather(read_with_ffmpeg(ffmpeg_exe, url, "udp"),
                                        read_with_ffmpeg(ffmpeg_exe, url, "tcp"))
        assert_decoded(udp)
        assert_decoded(tcp)
        info = live_node.services["live_registry"].info("live/cam")
        assert info["state"] == "live"
        assert {t["codec"] for t in info["tracks"]} == {"h264", "aac"}
        assert info["qos"]["bitrate_bps"] > 0 and info["qos"]["publisher"]["h264"]["lost"] == 0
    finally:
        await stop(publisher)


async def test_publish_key_required_without_open_publish(node_factory: Any, ffmpeg_exe: str) -> None:
    node = await node_factory(rtsp={"publish_keys": {"live/keyed": "s3cret"}})
    wrong = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed", "?key=nope"), "tcp", seconds=3)
    async with asyncio.timeout(20):
        await wrong.communicate()
    assert wrong.returncode != 0 and node.services["live_registry"].get("live/keyed") is None
    none = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed"), "tcp", seconds=3)
    async with asyncio.timeout(20):
        await none.communicate()
    assert none.returncode != 0
    bad_digest = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed").replace("//", "//enc:nope@"),
                                       "tcp", seconds=3)
    async with asyncio.timeout(20):
        await bad_digest.communicate()
    assert bad_digest.returncode != 0
    # ffmpeg answers our Digest challenge with the key as password (user name is free).
    digest = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed").replace("//", "//enc:s3cret@"),
                                   "tcp", seconds=4)
    try:
        await wait_live(node, "live/keyed")
    finally:
        await stop(digest)
    async with asyncio.timeout(10):
        while node.services["live_registry"].get("live/keyed") is not None:
            await asyncio.sleep(0.1)
    good = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed", "?key=s3cret"), "tcp", seconds=8)
    try:
        await wait_live(node, "live/keyed")
        # A second publisher on a live name is refused while the first keeps publishing.
        second = await start_publisher(ffmpeg_exe, rtsp_url(node, "live/keyed", "?key=s3cret"), "tcp", seconds=3)
        async with asyncio.timeout(20):
            await second.communicate()
        assert second.returncode != 0
        assert node.services["live_registry"].get("live/keyed") is not None
    finally:
        await stop(good)


@pytest.fixture
def tshark_exe() -> str:
    exe = shutil.which("tshark")
    dumpcap = shutil.which("dumpcap")
    if not exe or not dumpcap:
        pytest.skip("tshark/dumpcap not installed (scripts/provision.sh installs them)")
    return exe


async def test_tshark_sees_no_malformed_packets(node_factory: Any, ffmpeg_exe: str, tshark_exe: str,
                                               tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        rtp_port = s.getsockname()[1] & ~1
    node = await node_factory(open_publish=True, rtsp={"rtp_port": rtp_port})
    port, rtp_port = node.services["rtsp_port"], node.services["rtsp_rtp_port"]
    cap = tmp_path / "rtsp.pcap"
    capture = await asyncio.create_subprocess_exec(
        tshark_exe, "-i", "lo", "-w", str(cap), "-f", f"tcp port {port} or udp port {rtp_port} or udp port {rtp_port + 1}",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(10):
            while not cap.exists() or cap.stat().st_size == 0:
                if capture.returncode is not None:
                    err = (await capture.stderr.read()).decode() if capture.stderr else ""
                    pytest.skip(f"tshark cannot capture on lo: {err.strip()[:200]}")
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        url = rtsp_url(node, "live/cap")
        publisher = await start_publisher(ffmpeg_exe, url, "udp", seconds=8)
        try:
            await wait_live(node, "live/cap")
            udp, tcp = await asyncio.gather(read_with_ffmpeg(ffmpeg_exe, url, "udp", 3),
                                            read_with_ffmpeg(ffmpeg_exe, url, "tcp", 3))
            assert_decoded(udp, 3)
            assert_decoded(tcp, 3)
        finally:
            await stop(publisher)
        await asyncio.sleep(1.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            capture.terminate()
        async with asyncio.timeout(10):
            await capture.wait()
    decode = ["-d", f"udp.port=={rtp_port},rtp", "-d", f"udp.port=={rtp_port + 1},rtcp", "-d", f"tcp.port=={port},rtsp"]
    counts = await asyncio.to_thread(subprocess.run, [tshark_exe, "-r", str(cap), *decode, "-T", "fields", "-e", "_ws.col.Protocol"],
                            capture_output=True, text=True, timeout=60)
    protocols = set(counts.stdout.split())
    assert {"RTSP", "RTP", "RTCP"} <= protocols, protocols
    # Wireshark's H.264 dissector does not undo emulation prevention inside sprop-parameter-sets and
    # flags libx264's SPS as malformed; ffmpeg's own ANNOUNCE trips it the same way. That SPS is the
    # encoder's, carried verbatim, so descriptions carrying it are judged by the other checks only.
    sprop = 'sdp.fmtp.parameter contains "sprop-parameter-sets"'
    malformed = await asyncio.to_thread(subprocess.run, [tshark_exe, "-r", str(cap), *decode, "-Y",
                                f"(_ws.malformed or _ws.expert.severity >= error) and not ({sprop})"],
                               capture_output=True, text=True, timeout=60)
    assert malformed.returncode == 0 and malformed.stdout.strip() == "", malformed.stdout[:2000]


async def test_demo_channel_plays_in_ffmpeg(node_factory: Any, ffmpeg_exe: str) -> None:
    node = await node_factory(demo=True)
    await wait_live(node, "demo")
    info = node.services["live_registry"].info("demo")
    assert info["source"] == "demo" and info["tracks"][0]["width"] == 640
    result = await read_with_ffmpeg(ffmpeg_exe, rtsp_url(node, "demo"), "tcp", 3)
    assert_decoded(result, 3)


GST_SERVER = Path(__file__).parent / "peers" / "gst_rtsp_server.py"


def gst_available() -> str | None:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                            "assert Gst.ElementFactory.find('tsdemux') and Gst.ElementFactory.find('rtph264pay')"],
                           capture_output=True, text=True, timeout=30) if Path("/usr/bin/python3").exists() else None
    if probe is None or probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or ["no /usr/bin/python3"])[-1] if probe else "no /usr/bin/python3"
    return None


async def test_our_client_pulls_from_gstreamer_rtsp_server(node_factory: Any, ffmpeg_exe: str) -> None:
    """ffmpeg cannot serve RTSP PLAY, so the third-party source is gst-rtsp-server fed by ffmpeg."""
    reason = await asyncio.to_thread(gst_available)
    if reason:
        pytest.skip(f"gst-rtsp-server not usable: {reason}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gst_port = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        ts_port = s.getsockname()[1]
    gst = await asyncio.create_subprocess_exec("/usr/bin/python3", str(GST_SERVER), str(gst_port), "/src", str(ts_port),
                                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL)
    feeder = await asyncio.create_subprocess_exec(
        ffmpeg_exe, "-hide_banner", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=20",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20", "-c:v", "libx264", "-preset",
        "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts",
        f"udp://127.0.0.1:{ts_port}?pkt_size=1316", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        assert gst.stdout is not None
        async with asyncio.timeout(20):
            assert (await gst.stdout.readline()).strip() == b"ready"
        node = await node_factory(rtsp={"pull": {"from-gst": f"rtsp://127.0.0.1:{gst_port}/src"}})
        await wait_live(node, "from-gst", limit=40)
        stream = node.services["live_registry"].get("from-gst")
        assert sorted(t.codec for t in stream.tracks) == ["aac", "h264"]
        # And what we pulled plays back from our server in ffmpeg.
        result = await read_with_ffmpeg(ffmpeg_exe, rtsp_url(node, "from-gst"), "tcp", 3)
        assert_decoded(result, 3)
    finally:
        await stop(feeder)
        await stop(gst)


async def test_h265_and_opus_publish_and_read(live_node: Node, ffmpeg_exe: str) -> None:
    url = rtsp_url(live_node, "live/hevc")
    publisher = await start_publisher(ffmpeg_exe, url, "tcp", seconds=10,
                                      video=("libx265", "-x265-params", "log-level=error:bframes=0"),
                                      audio=("libopus", "-b:a", "64k"))
    try:
        await wait_live(live_node, "live/hevc")
        stream = live_node.services["live_registry"].get("live/hevc")
        assert [t.codec for t in stream.tracks] == ["h265", "opus"] and stream.tracks[0].vps
        assert_decoded(await read_with_ffmpeg(ffmpeg_exe, url, "tcp", 3), 3)
    finally:
        await stop(publisher)


async def test_b_frames_give_consumers_increasing_dts(live_node: Node, ffmpeg_exe: str) -> None:
    url = rtsp_url(live_node, "live/bframes")
    publisher = await start_publisher(ffmpeg_exe, url, "tcp", seconds=8, video=("libx264", "-bf", "2"))
    try:
        await wait_live(live_node, "live/bframes")
        reader = live_node.services["live_registry"].subscribe("live/bframes")
        video = []
        async with asyncio.timeout(20):
            while len(video) < 60:
                au = await reader.get()
                if au.codec == "h264":
                    video.append(au)
        reader.close()
        pts, dts = [a.pts for a in video], [a.dts for a in video]
        assert any(b < a for a, b in itertools.pairwise(pts))  # B-frames: presentation order differs
        assert all(a < b for a, b in itertools.pairwise(dts))
        assert all(d <= p for p, d in zip(pts, dts, strict=False))
    finally:
        await stop(publisher)


async def test_replace_publisher_setting(node_factory: Any, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True, rtsp={"replace_publisher": True})
    url = rtsp_url(node, "live/swap")
    first = await start_publisher(ffmpeg_exe, url, "tcp", seconds=20)
    second = None
    try:
        await wait_live(node, "live/swap")
        old = node.services["live_registry"].get("live/swap")
        second = await start_publisher(ffmpeg_exe, url, "tcp", seconds=20)
        async with asyncio.timeout(20):
            await first.wait()  # the server ended the replaced publisher's session
        assert first.returncode != 0
        new = node.services["live_registry"].get("live/swap")
        assert new is not None and new is not old and second.returncode is None
    finally:
        await stop(first)
        if second is not None:
            await stop(second)


async def test_pause_play_teardown_on_an_ffmpeg_stream(live_node: Node, ffmpeg_exe: str) -> None:
    """ffmpeg cannot be told to PAUSE from its command line, so our client drives the player side."""
    from hivecast.rtp import RtpPacket, is_rtcp
    from hivecast.rtsp.client import RtspClient
    from hivecast.rtsp.message import InterleavedFrame

    url = rtsp_url(live_node, "live/pp")
    publisher = await start_publisher(ffmpeg_exe, url, "udp", seconds=14)
    packets: list[RtpPacket] = []

    def on_frame(frame: InterleavedFrame) -> None:
        if frame.channel % 2 == 0 and not is_rtcp(frame.data):
            packets.append(RtpPacket.parse(frame.data))

    client = RtspClient(url, on_frame=on_frame)
    try:
        await wait_live(live_node, "live/pp")
        await client.connect()
        sd = await client.describe()
        for i, m in enumerate(sd.media):
            await client.setup_tcp(m.control, 2 * i)
        await client.checked("PLAY")
        async with asyncio.timeout(10):
            while len(packets) < 50:
                await asyncio.sleep(0.05)
        await client.checked("PAUSE")
        paused = len(packets)
        other = asyncio.ensure_future(read_with_ffmpeg(ffmpeg_exe, url, "udp", 2))
        await asyncio.sleep(1.0)
        assert len(packets) == paused
        await client.checked("PLAY")
        async with asyncio.timeout(10):
            while len(packets) < paused + 50:
                await asyncio.sleep(0.05)
        await client.checked("TEARDOWN")
        assert (await client.request("PLAY")).status == 454
        assert_decoded(await other, 2)  # a second player was never disturbed
    finally:
        await client.close()
        await stop(publisher)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_gstreamer_plays_our_demo_stream(node_factory: Any, protocol: str) -> None:
    """GStreamer's rtspsrc (a second third-party player) decodes our relay over UDP and TCP."""
    import json

    reason = await asyncio.to_thread(gst_available)
    if reason:
        pytest.skip(f"GStreamer not usable: {reason}")
    node = await node_factory(demo=True)
    await wait_live(node, "demo")
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", str(Path(__file__).parent / "peers" / "gst_rtsp_play.py"), rtsp_url(node, "demo"),
        protocol, "3", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["errors"] == [] and result["video"] >= 50 and result["audio"] >= 100, result


async def test_push_to_ffmpeg_listening_as_rtsp_server(node_factory: Any, ffmpeg_exe: str) -> None:
    """Our push client (ANNOUNCE/RECORD) publishes the demo to ffmpeg run as an RTSP server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = f"rtsp://127.0.0.1:{port}/in"
    listener = await asyncio.create_subprocess_exec(
        ffmpeg_exe, "-hide_banner", "-v", "error", "-rtsp_flags", "listen", "-timeout", "30", "-i", target,
        "-map", "0:v:0", "-map", "0:a:0", "-t", "3", "-f", "framemd5", "-",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await asyncio.sleep(0.5)
        node = await node_factory(demo=True, rtsp={"push": {"demo": target}})
        async with asyncio.timeout(40):
            out, err = await listener.communicate()
        assert listener.returncode == 0 and err.strip() == b"", err.decode()
        frames = [ln for ln in out.decode().splitlines() if ln and not ln.startswith("#")]
        assert sum(ln.startswith("0,") for ln in frames) >= 60 and sum(ln.startswith("1,") for ln in frames) >= 100
        assert node.services["live_registry"].get("demo") is not None
    finally:
        await stop(listener)
