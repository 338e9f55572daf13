"""The FLV hub: instant start from the GOP cache, shared bytes, GOP-aware dropping for a stuck reader."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from hivecast.media import AccessUnit, LiveRegistry, TrackInfo
from hivecast.rtmp import flv
from hivecast.rtmp.chunk import ChunkReader
from hivecast.rtmp.fanout import FanoutManager, FanoutSettings

SPS = bytes.fromhex("6742c01e95a0a0fd00f0088462a0")
PPS = bytes.fromhex("68ce3c80")


def frame(i: int, key: bool, size: int) -> AccessUnit:
    nals = [SPS, PPS, b"\x65" + b"\x01" * size] if key else [b"\x41" + b"\x02" * size]
    return AccessUnit(0, "h264", i * 3600, i * 3600, 90000, key, flv.to_annexb(nals))


async def _pair(small: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamWriter]:
    """A loopback connection: (client reader, client writer, server writer)."""
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result(w)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sock = socket.socket()
    if small:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    srv_writer = await asyncio.wait_for(accepted, 5)
    if small:
        srv_writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.close()
    return reader, writer, srv_writer


async def test_hub_start_share_and_drop() -> None:
    registry = LiveRegistry()
    pub = registry.publish("s", [TrackInfo(0, "h264", 90000, sps=SPS, pps=PPS)])
    for i in range(3):
        pub.send(frame(i, i == 0, 1000))
    manager = FanoutManager(registry, FanoutSettings(batch_ms=0, max_queue_bytes=512 * 1024, write_timeout=60))
    hub = manager.hub("s")
    assert hub is not None and manager.hub("s") is hub
    fast_r, fast_w, fast_srv = await _pair(False)
    _slow_r, slow_w, slow_srv = await _pair(True)
    fast, first = hub.add_rtmp(fast_srv.transport, 1)
    fast_srv.write(first)
    slow, first2 = hub.add_rtmp(slow_srv.transport, 1)
    slow_srv.write(first2)
    assert first == first2  # same bytes for every reader
    chunks = ChunkReader()
    chunks.chunk_size = 4096
    got = chunks.feed(await asyncio.wait_for(fast_r.read(1 << 20), 5))
    # Instant start: metadata, sequence header, then the cached GOP from its keyframe.
    assert [m.type_id for m in got[:2]] == [18, 9]
    assert flv.parse_video(got[1].payload).sequence_header and flv.parse_video(got[2].payload).keyframe
    received = 0

    async def drain() -> None:
        nonlocal received
        while data := await fast_r.read(1 << 20):
            received += len(data)

    task = asyncio.get_running_loop().create_task(drain())
    sent = 0
    for i in range(3, 200):
        pub.send(frame(i, i % 10 == 0, 20_000))
        sent += 20_000
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.5)
    assert slow.dropped_gops >= 1 and slow.dropped_batches > 10
    # The stuck reader, once it drains, resumes at a keyframe right after the sequence headers again.
    slow_chunks = ChunkReader()
    slow_chunks.chunk_size = 4096
    slow_msgs = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            while True:
                slow_msgs += slow_chunks.feed(await _slow_r.read(1 << 20))
                if sum(1 for m in slow_msgs if m.type_id == 9 and flv.parse_video(m.payload).sequence_header) >= 2:
                    break
    for i in range(200, 230):
        pub.send(frame(i, i % 10 == 0, 2000))
        await asyncio.sleep(0.01)
    async with asyncio.timeout(5):
        while sum(1 for m in slow_msgs if m.type_id == 9 and flv.parse_video(m.payload).sequence_header) < 2:
            slow_msgs += slow_chunks.feed(await _slow_r.read(1 << 20))
    headers = [i for i, m in enumerate(slow_msgs) if m.type_id == 9 and flv.parse_video(m.payload).sequence_header]
    assert flv.parse_video(slow_msgs[headers[1] + 1].payload).keyframe
    assert fast.dropped_batches == 0 and received >= sent
    assert hub.figures()["readers"] == 2
    pub.close()
    await asyncio.sleep(0.4)  # the hub notices the stream went offline
    assert hub.closed and "s" not in manager.hubs
    task.cancel()
    for w in (fast_w, slow_w, fast_srv, slow_srv):
        w.close()
