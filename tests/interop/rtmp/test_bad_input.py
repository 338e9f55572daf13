"""Bad peers are cut off by limits; the publisher and the other readers never notice."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from hivecast.net import NetError
from hivecast.rtmp import amf0, flv
from hivecast.rtmp.chunk import COMMAND_AMF0, ChunkWriter, Message, encode_message, set_chunk_size
from hivecast.rtmp.client import RtmpClient
from hivecast.rtmp.errors import StatusError
from hivecast.rtmp.handshake import ClientHandshake
from hivecast.rtmp.session import MediaReceived, StatusReceived, command
from tests.conftest import NodeFactory
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop]


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """True when the server closes on us (EOF or reset) within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return True


async def _handshaken(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hs = ClientHandshake()
    writer.write(hs.start())
    c2 = b""
    async with asyncio.timeout(10):
        while not hs.done:
            c2 = hs.receive_data(await reader.read(8192))
    writer.write(c2)
    return reader, writer


def _connect_bytes(w: ChunkWriter) -> bytes:
    return w.write(command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"}))


async def _abuse(port: int, payload_after_handshake: bytes | None, raw: bytes | None = None) -> bool:
    if raw is not None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
    else:
        reader, writer = await _handshaken(port)
        assert payload_after_handshake is not None
        writer.write(payload_after_handshake)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    closed = await _closed_by_server(reader)
    writer.close()
    return closed


async def test_bad_peers_are_cut_off(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True, rtmp={"port": 0, "handshake_timeout": 1.0, "idle_timeout": 5.0,
                                                       "max_message_size": 1 << 20, "max_chunk_size": 65536})
    port = node.services["rtmp_port"]
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "main"), 14)
    try:
        stream = await wait_live(node, "main")
        watcher = await RtmpClient.open(rtmp_url(node, "main"))
        await watcher.play()
        received = 0

        async def watch() -> None:
            nonlocal received
            while True:
                for ev in await watcher.events(timeout=10):
                    if isinstance(ev, MediaReceived):
                        received += 1

        watching = asyncio.get_running_loop().create_task(watch())
        w = ChunkWriter()
        units_before = stream.units
        cases = {
            "not RTMP at all": await _abuse(port, None, raw=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "RTMPE version byte": await _abuse(port, None, raw=b"\x06" + b"\x00" * 1536),
            "never finishes the handshake": await _abuse(port, None, raw=b"\x03" + b"\x00" * 700),
            "huge chunk size": await _abuse(port, ChunkWriter().write(set_chunk_size(0x7FFFFFFF))),
            "huge message length": await _abuse(port, b"\x03\x00\x00\x00\xff\xff\xff\x14\x00\x00\x00\x00" + b"x" * 128),
            "AMF bomb (deep nesting)": await _abuse(port, ChunkWriter().write(set_chunk_size(65536)) + encode_message(
                3, COMMAND_AMF0, 0, 0, amf0.encode("connect", 1.0) + b"\x0a\x00\x00\x00\x01" * 5000 + b"\x05", 65536)),
            "AMF bomb (huge count)": await _abuse(port, encode_message(
                3, COMMAND_AMF0, 0, 0, amf0.encode("connect", 1.0) + b"\x0a\xff\xff\xff\xff\x05", 128)),
            "commands before connect": await _abuse(port, b"".join(
                w.write(command("publish", 0, None, "main", "live", stream_id=1)) for _ in range(6))),
            "play before createStream": await _abuse(port, _connect_bytes(ChunkWriter()) + ChunkWriter().write(
                command("play", 0, None, "main", stream_id=1, csid=8))),
            "media without publish": await _abuse(port, _connect_bytes(ChunkWriter()) + encode_message(
                6, 9, 1, 0, b"\x17\x01\x00\x00\x00", 128)),
            "createStream flood": await _abuse(port, _connect_bytes(ChunkWriter()) + b"".join(
                ChunkWriter().write(command("createStream", float(i + 2), None)) for i in range(40))),
            "too many chunk streams": await _abuse(port, b"".join(
                encode_message(csid, 9, 1, 0, b"x" * 300, 128)[:140] for csid in range(3, 200))),
            "publish to a name in use": await _abuse(port, _publish_bytes("main")),
        }
        failed = [name for name, closed in cases.items() if not closed]
        assert not failed, f"not cut off: {failed}"
        assert node.services["rtmp_server"].protocol_errors >= 8
        # The publisher never noticed, and the reader kept receiving all along.
        assert node.services["live_registry"].get("main") is stream
        assert stream.units > units_before
        assert received > 50 and not watching.done()
        rc, frames, err = await decode(ffmpeg_exe, rtmp_url(node, "main"), 2)
        assert rc == 0 and not err and frames >= 40, err
        watching.cancel()
        await watcher.close()
    finally:
        rc, err = await finish(pub, 40)
    assert rc == 0, err


def _publish_bytes(name: str) -> bytes:
    w = ChunkWriter()
    out = _connect_bytes(w)
    out += w.write(command("createStream", 2.0, None))
    out += w.write(Message(COMMAND_AMF0, 1, 0, amf0.encode("publish", 0.0, None, name, "live"), 8))
    return out


async def test_idle_publisher_ends_the_stream_cleanly(node_factory: NodeFactory, ffmpeg_exe: str,
                                                      tmp_path: Path) -> None:
    clip = tmp_path / "clip.flv"
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
        "-g", "25", "-c:a", "aac", "-f", "flv", str(clip))
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    tags = flv.TagReader().feed(await asyncio.to_thread(clip.read_bytes))
    node = await node_factory(open_publish=True, rtmp={"port": 0, "idle_timeout": 1.5})
    registry = node.services["live_registry"]
    pub = await RtmpClient.open(rtmp_url(node, "quiet"))
    await pub.publish()
    for tag in tags:
        if tag.tag_type in (8, 9):
            pub.send_media(tag.tag_type, tag.timestamp, tag.payload)
    await pub.flush()
    async with asyncio.timeout(10):
        while registry.get("quiet") is None:
            await asyncio.sleep(0.05)
    player = await RtmpClient.open(rtmp_url(node, "quiet"))
    await player.play()
    # The publisher now says nothing: the idle timeout ends the stream, and the player is told.
    codes: list[str] = []
    with contextlib.suppress(ConnectionError, NetError, StatusError):
        async with asyncio.timeout(15):
            while True:
                codes += [e.code for e in await player.events(timeout=15) if isinstance(e, StatusReceived)]
    assert "NetStream.Play.UnpublishNotify" in codes
    assert registry.get("quiet") is None
    await player.close()
    await pub.close()
