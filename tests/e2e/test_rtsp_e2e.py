"""The RTSP server as users meet it: play/pause/teardown, misbehaving clients, slow readers, pulls.

A synthetic publisher feeds access units straight into the node's live registry (the relay does not
decode), so these run without ffmpeg; the interop tests cover real encoders and players.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hivecast.media.live import AccessUnit, LiveRegistry, TrackInfo
from hivecast.node import Node
from hivecast.rtp import RtpPacket, is_rtcp
from hivecast.rtp.h264 import annexb_join
from hivecast.rtsp.client import PullSource, RtspClient
from hivecast.rtsp.message import InterleavedFrame, MessageParser, Response
from hivecast.rtsp.transport import parse_transport

pytestmark = pytest.mark.timeout(90)

SPS = bytes.fromhex("6742c01e95a0")
PPS = bytes.fromhex("68ce3c80")
TRACKS = [TrackInfo(0, "h264", 90000, sps=SPS, pps=PPS), TrackInfo(1, "aac", 48000, config=bytes.fromhex("1190"),
                                                                  channels=2)]


async def synthetic(registry: LiveRegistry, name: str, *, frame_bytes: int = 3000, fps: int = 50) -> None:
    """Publish a fake H.264 + AAC stream (keyframe every 25 frames) until cancelled."""
    pub = registry.publish(name, TRACKS, source="test")
    try:
        i = 0
        while True:
            key = i % 25 == 0
            body = bytes((i & 0xFF,)) * frame_bytes
            nals = [SPS, PPS, b"\x65" + body] if key else [b"\x41" + body]
            pub.send(AccessUnit(0, "h264", i * 1800, i * 1800, 90000, key, annexb_join(nals)))
            pub.send(AccessUnit(1, "aac", i * 960, i * 960, 48000, True, b"\x21" * 200))
            i += 1
            await asyncio.sleep(1 / fps)
    finally:
        pub.close()


@pytest.fixture
async def live(node_factory: Any) -> AsyncIterator[Node]:
    node = await node_factory(open_publish=True, rtsp={"request_timeout": 1.0, "session_timeout": 3.0,
                                                       "reader_buffer_bytes": 65536, "write_timeout": 1.0})
    task = asyncio.get_running_loop().create_task(synthetic(node.services["live_registry"], "live/syn"))
    yield node
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def url(node: Node, path: str = "live/syn") -> str:
    return f"rtsp://127.0.0.1:{node.services['rtsp_port']}/{path}"


class Collector:
    def __init__(self) -> None:
        self.rtp: dict[int, list[RtpPacket]] = {}
        self.rtcp = 0

    def __call__(self, frame: InterleavedFrame) -> None:
        if frame.channel % 2 or is_rtcp(frame.data):
            self.rtcp += 1
        else:
            self.rtp.setdefault(frame.channel, []).append(RtpPacket.parse(frame.data))

    def count(self) -> int:
        return sum(len(v) for v in self.rtp.values())

    async def wait(self, n: int, limit: float = 10) -> None:
        async with asyncio.timeout(limit):
            while self.count() < n:
                await asyncio.sleep(0.02)


async def play_tcp(node: Node) -> tuple[RtspClient, Collector, dict[int, int]]:
    col = Collector()
    client = RtspClient(url(node), on_frame=col)
    await client.connect()
    sd = await client.describe()
    ssrcs = {}
    for i, m in enumerate(sd.media):
        spec = await client.setup_tcp(m.control, 2 * i)
        assert spec.ssrc is not None
        ssrcs[2 * i] = spec.ssrc
    await client.checked("PLAY")
    return client, col, ssrcs


async def test_play_pause_resume_teardown(live: Node) -> None:
    client, col, ssrcs = await play_tcp(live)
    other, col2, ssrcs2 = await play_tcp(live)
    try:
        await col.wait(50)
        await col2.wait(50)
        # Each session has its own SSRC per track, as its Transport reply said.
        for ch, packets in col.rtp.items():
            assert {p.ssrc for p in packets} == {ssrcs[ch]}
        assert set(ssrcs.values()).isdisjoint(ssrcs2.values())
        assert col.rtcp > 0  # sender reports arrive
        await client.checked("PAUSE")
        paused_at = col.count()
        last_seq = {ch: p[-1].sequence_number for ch, p in col.rtp.items()}
        await asyncio.sleep(0.5)
        assert col.count() == paused_at  # nothing after the PAUSE reply
        await client.checked("PLAY")
        await col.wait(paused_at + 30)
        for ch, packets in col.rtp.items():
            seqs = [p.sequence_number for p in packets]
            assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), ch
            assert (packets[-1].sequence_number - last_seq[ch]) & 0xFFFF < 10_000
        await client.checked("TEARDOWN")
        gone = await client.request("GET_PARAMETER")
        assert gone.status == 454
        await col2.wait(col2.count() + 20)  # the other reader never noticed
    finally:
        await client.close()
        await other.close()


async def raw_exchange(node: Node, data: bytes, *, read_limit: float = 5) -> tuple[list[Response], bool]:
    """Send raw bytes; return the responses and whether the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["rtsp_port"])
    parser = MessageParser(max_body_bytes=1 << 20)
    responses: list[Response] = []
    closed = False
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            async with asyncio.timeout(read_limit):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        closed = True
                        break
                    responses += [e for e in parser.feed(chunk) if isinstance(e, Response)]
        except TimeoutError:
            pass
        except ConnectionError:
            closed = True
    finally:
        writer.close()
    return responses, closed


async def test_bad_clients_never_hurt_the_publisher_or_readers(live: Node) -> None:
    client, col, _ = await play_tcp(live)
    try:
        await col.wait(20)
        u = url(live)
        responses, closed = await raw_exchange(live, b"\x16\x03\x01\x00\xa5garbage garbage\r\n\r\n")
        assert closed and responses and responses[0].status == 400
        responses, closed = await raw_exchange(live, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert closed and responses and responses[0].status == 413
        responses, _ = await raw_exchange(live, b"FOO " + u.encode() + b" RTSP/1.0\r\nCSeq: 7\r\n\r\n", read_limit=0.5)
        assert [r.status for r in responses] == [501] and responses[0].headers.get("CSeq") == "7"
        setup = (f"SETUP {u}/trackID=9 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
                 f"SETUP rtsp://127.0.0.1/live/missing/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n"
                 f"Transport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"
                 f"PLAY {u} RTSP/1.0\r\nCSeq: 4\r\nSession: nosuchsession\r\n\r\n"
                 f"SETUP {u}/trackID=0 RTSP/1.0\r\nCSeq: 5\r\nTransport: RAW/RAW/UDP;unicast\r\n\r\n")
        responses, _ = await raw_exchange(live, setup.encode(), read_limit=0.5)
        assert [r.status for r in responses] == [404, 404, 454, 461]
        # One connection cannot hoard sessions.
        many = "".join(f"SETUP {u}/trackID=0 RTSP/1.0\r\nCSeq: {i}\r\nTransport: RTP/AVP;unicast;"
                       f"client_port={5000 + 2 * i}-{5001 + 2 * i}\r\n\r\n" for i in range(20))
        responses, _ = await raw_exchange(live, many.encode(), read_limit=0.5)
        assert [r.status for r in responses] == [200] * 16 + [453] * 4
        # A client that says nothing is dropped after request_timeout (1 s here).
        responses, closed = await raw_exchange(live, b"", read_limit=10)
        assert closed and responses == []
        # A UDP reader that goes silent (no RTCP, no keep-alive) is timed out after session_timeout.
        silent = RtspClient(u)
        await silent.connect()
        await silent.describe()
        await silent.checked("SETUP", f"{u}/trackID=0", headers={"Transport": "RTP/AVP;unicast;client_port=40000-40001"})
        await silent.checked("PLAY")
        server = live.services["rtsp_server"]
        async with asyncio.timeout(15):
            await silent.closed.wait()
        assert silent.session not in server.sessions
        await silent.close()
        # Through all of it the publisher stayed live and the first reader kept receiving.
        before = col.count()
        await col.wait(before + 50)
        assert live.services["live_registry"].get("live/syn") is not None
    finally:
        await client.close()


async def test_slow_tcp_reader_is_dropped_without_slowing_others(live: Node) -> None:
    good, col, _ = await play_tcp(live)
    big = asyncio.get_running_loop().create_task(
        synthetic(live.services["live_registry"], "live/big", frame_bytes=60_000))
    await asyncio.sleep(0.2)
    # A reader that never reads: its socket fills, the server drops its media and finally closes it.
    reader, writer = await asyncio.open_connection("127.0.0.1", live.services["rtsp_port"], limit=1024)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
    u = url(live, "live/big")
    writer.write((f"SETUP {u}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    session = next(ln.split(b":", 1)[1].strip().split(b";")[0] for ln in head.split(b"\r\n")
                   if ln.lower().startswith(b"session:"))
    writer.write(f"PLAY {u} RTSP/1.0\r\nCSeq: 2\r\nSession: {session.decode()}\r\n\r\n".encode())
    server = live.services["rtsp_server"]
    try:
        async with asyncio.timeout(30):
            while session.decode() in server.sessions:
                await asyncio.sleep(0.1)
        before = col.count()
        await col.wait(before + 50)
        stream = live.services["live_registry"].get("live/syn")
        assert stream is not None and stream.state == "live"
    finally:
        writer.close()
        await good.close()
        big.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await big


async def test_rtcp_receiver_reports_give_reader_qos(live: Node) -> None:
    events = live.bus.subscribe("stream.qos")
    client, col, ssrcs = await play_tcp(live)
    try:
        await col.wait(30)
        # Report zero loss and some jitter for the video SSRC, as a player's RR would.
        rr = struct.pack("!BBHI", 0x81, 201, 7, 0x1234) + struct.pack("!IB3sIIII", ssrcs[0], 0, b"\x00\x00\x00",
                                                                      1000, 900, 0, 0)
        await client.send_frame(1, rr)
        server = live.services["rtsp_server"]
        async with asyncio.timeout(10):
            while True:
                qos = server.reader_qos("live/syn")
                mine = [q for q in qos if q["session"] == client.session]
                if mine and mine[0]["jitter_ms"] == 10.0:
                    break
                await asyncio.sleep(0.1)
        assert mine[0]["transport"] == "tcp" and mine[0]["loss"] == 0.0
        info = live.services["live_registry"].info("live/syn")
        assert info["readers"] >= 1 and "reader_loss_max" in info["qos"]
        async with asyncio.timeout(5):
            event = await events.get()
        assert event.data["name"] == "live/syn" and event.data["rtsp_readers"] >= 1
    finally:
        await client.close()


@pytest.mark.parametrize("suffix", ["", "#udp"])
async def test_pull_from_our_own_server(live: Node, node_factory: Any, suffix: str) -> None:
    mirror = await node_factory(rtsp={"pull": {"mirror": url(live) + suffix}})
    registry = mirror.services["live_registry"]
    async with asyncio.timeout(20):
        while (s := registry.get("mirror")) is None or s.units < 50:
            await asyncio.sleep(0.1)
    assert [t.codec for t in s.tracks] == ["h264", "aac"]
    reader = registry.subscribe("mirror")
    async with asyncio.timeout(5):
        first = await reader.get()
    assert first.codec == "h264" and first.keyframe and first.data.startswith(b"\x00\x00\x00\x01")
    reader.close()
    # The source sees our receiver reports: its reader session has RTCP figures.
    server = live.services["rtsp_server"]
    async with asyncio.timeout(10):
        while not any(q["rtt_ms"] is not None for q in server.reader_qos("live/syn")):
            await asyncio.sleep(0.1)


async def test_pull_reconnects_with_backoff(node_factory: Any) -> None:
    source = await node_factory(open_publish=True)
    registry = LiveRegistry()
    pull = PullSource(url(source, "live/later"), "copy", registry, min_backoff=0.2, max_backoff=0.5)
    pull.start()
    try:
        async with asyncio.timeout(10):
            while pull.attempts < 2:
                await asyncio.sleep(0.05)
        assert registry.get("copy") is None and pull.last_error
        task = asyncio.get_running_loop().create_task(synthetic(source.services["live_registry"], "live/later"))
        try:
            async with asyncio.timeout(20):
                while registry.get("copy") is None:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with asyncio.timeout(20):
            while registry.get("copy") is not None:
                await asyncio.sleep(0.05)
    finally:
        await pull.stop()


def test_transport_reply_parses() -> None:
    assert parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=0000ABCD")[0].ssrc == 0xABCD


async def test_mutated_requests_never_take_the_server_down(live: Node, caplog: pytest.LogCaptureFixture) -> None:
    """Random bytes and mutated valid requests on fresh connections; the server keeps serving."""
    import random

    client, col, _ = await play_tcp(live)
    rng = random.Random(1234)
    u = url(live)
    valid = [f"OPTIONS {u} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
             f"DESCRIBE {u} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
             f"SETUP {u}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
             f"ANNOUNCE {u}2 RTSP/1.0\r\nCSeq: 4\r\nContent-Type: application/sdp\r\nContent-Length: 20\r\n\r\nv=0\r\nm=video 0 RTP/AVP"]
    try:
        for i in range(40):
            data = bytearray(rng.choice(valid).encode())
            for _ in range(rng.randint(1, 8)):
                op = rng.random()
                pos = rng.randrange(len(data))
                if op < 0.4:
                    data[pos] = rng.randrange(256)
                elif op < 0.7:
                    del data[pos : pos + rng.randint(1, 10)]
                else:
                    data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
            if i % 5 == 0:
                data = bytearray(rng.randbytes(rng.randint(1, 3000)))
            await raw_exchange(live, bytes(data), read_limit=0.2)
        responses, _ = await raw_exchange(live, valid[0].encode(), read_limit=1)
        assert responses and responses[0].status == 200
        before = col.count()
        await col.wait(before + 30)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []  # no handler crashed on the way
    finally:
        await client.close()


async def test_every_live_stream_reports_qos_events(live: Node) -> None:
    events = live.bus.subscribe("stream.qos")
    async with asyncio.timeout(10):
        while True:
            event = await events.get()
            if event.data["name"] == "live/syn" and event.data["bitrate_bps"] > 0:
                break
    assert event.data["rtsp_readers"] == 0 and event.data["readers"] == 0


async def test_cli_rtsp_pull_serves_the_pulled_stream(live: Node, tmp_path: Any) -> None:
    """`hivecast rtsp pull URL --as NAME` as a user runs it: a real process that pulls and serves."""
    import os
    import signal
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", "rtsp", "pull", url(live), "--as", "mirror", "--host", "127.0.0.1",
        "--http-port", "0", "--rtsp-port", str(port), "--data-dir", str(tmp_path / "pull"),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        col = Collector()
        async with asyncio.timeout(30):
            while True:
                client = RtspClient(f"rtsp://127.0.0.1:{port}/mirror", on_frame=col)
                try:
                    await client.connect()
                    response = await client.request("DESCRIBE")
                    if response.status == 200:
                        break
                except Exception:
                    pass
                finally:
                    await client.close()
                await asyncio.sleep(0.3)
        assert b"H264/90000" in response.body and b"MPEG4-GENERIC/48000" in response.body
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await proc.wait()
    assert proc.returncode == 0


async def test_rtsp_figures_in_metrics(live: Node) -> None:
    import urllib.request

    client, col, _ = await play_tcp(live)
    try:
        await col.wait(10)
        port = live.services["http_port"]
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
        assert 'hivecast_rtsp_sessions{kind="play"} 1.0' in body
        assert "hivecast_live_streams 1.0" in body and 'hivecast_limit{name="rtsp_session_timeout"} 3.0' in body
    finally:
        await client.close()


async def test_push_to_our_own_server(live: Node, node_factory: Any) -> None:
    source = await node_factory(rtsp={"push": {"cam": url(live, "relayed/cam")}})
    task = asyncio.get_running_loop().create_task(synthetic(source.services["live_registry"], "cam"))
    try:
        registry = live.services["live_registry"]
        async with asyncio.timeout(20):
            while (s := registry.get("relayed/cam")) is None or s.units < 50:
                await asyncio.sleep(0.1)
        assert [t.codec for t in s.tracks] == ["h264", "aac"] and s.tracks[0].sps == SPS
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
