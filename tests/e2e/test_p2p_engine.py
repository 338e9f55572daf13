"""Our peer engine against itself on loopback: a swarm, lying and hostile peers, resume, the node's tracker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from pathlib import Path
from urllib.parse import quote_from_bytes

import httpx
import pytest

from hivecast.p2p import bencode
from hivecast.p2p.client import download
from hivecast.p2p.metainfo import create_torrent, encode_torrent, parse_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent
from hivecast.p2p.wire import messages as m
from tests.conftest import NodeFactory, node_url

pytestmark = [pytest.mark.timeout(120)]


def make_content(root: Path, name: str, size: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "video.mp4").write_bytes(os.urandom(size))
    (d / "index.m3u8").write_bytes(b"#EXTM3U\n")
    return d


async def seeder(root: Path, data: bytes, **opts: object) -> tuple[Session, Torrent]:
    sess = Session(SessionOptions(**opts))  # type: ignore[arg-type]
    await sess.start()
    t = await sess.add(Torrent.from_metainfo(parse_torrent(data), root, seed_only=True))
    assert t.completed.is_set()
    return sess, t


async def test_swarm_of_ten_clients_shares_the_load(node_factory: NodeFactory, tmp_path: Path) -> None:
    node = await node_factory("serve", p2p={"bt_port": 0, "tracker_udp_port": 0, "upload_slots": 2,
                                            "piece_length": 32768})
    size = 2 * 1024 * 1024
    d = make_content(node.settings.media_dir / "vod", "swarm1", size)
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "swarm1", "dir": str(d), "files": ["video.mp4", "index.m3u8"]})
    async with asyncio.timeout(20):
        await sub.get()
    meta = parse_torrent((d / "swarm1.torrent").read_bytes())
    http_tracker = next(t for t in meta.trackers if t.startswith("http"))
    torrent_file = tmp_path / "swarm.torrent"
    torrent_file.write_bytes(encode_torrent(meta.info.raw, announce=[http_tracker]))
    sessions = [Session(SessionOptions(upload_slots=4)) for _ in range(10)]
    for s in sessions:
        await s.start()
    try:
        torrents = await asyncio.gather(*(
            download(str(torrent_file), tmp_path / f"c{i}", session=s, timeout=90) for i, s in enumerate(sessions)))
        for i in range(10):
            assert (tmp_path / f"c{i}" / "swarm1" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
        total = meta.info.total_length
        seed_up = node.services["torrents"].session.torrents[meta.info.info_hash].uploaded
        uploads = [t.uploaded for t in torrents]
        print(f"swarm: file {total} B, seeder uploaded {seed_up} B ({seed_up / total:.2f}x), clients {uploads}")
        assert seed_up < 10 * total, (seed_up, uploads)
        assert sum(uploads) > total
        assert sum(1 for u in uploads if u > 0) >= 8, uploads
    finally:
        for s in sessions:
            await s.close()


async def test_bad_pieces_are_refetched_and_the_liar_banned(tmp_path: Path) -> None:
    d = make_content(tmp_path / "src", "v", 600_000)
    data = await create_torrent(d, piece_length=32768)
    good, _ = await seeder(tmp_path / "src", data)
    evil, evil_t = await seeder(tmp_path / "src", data)
    assert evil_t.storage is not None
    real_read = evil_t.storage.read

    def corrupt(index: int, begin: int, length: int) -> bytes:
        block = bytearray(real_read(index, begin, length))
        block[0] ^= 0xFF
        return bytes(block)

    evil_t.storage.read = corrupt  # type: ignore[method-assign]
    (tmp_path / "t.torrent").write_bytes(data)
    client = Session(SessionOptions())
    await client.start()
    try:
        t = await client.add(Torrent.from_metainfo(parse_torrent(data), tmp_path / "out",
                                                   peers=[("127.0.0.1", evil.port)]))
        async with asyncio.timeout(30):
            while t.hash_failures == 0:
                await asyncio.sleep(0.05)
        assert client.is_banned("127.0.0.1", evil.peer_id, evil.port)
        assert t.have is not None and t.have.count == 0  # nothing bad was kept
        t.connect_peer(("127.0.0.1", good.port))
        async with asyncio.timeout(30):
            await t.completed.wait()
        assert (tmp_path / "out" / "v" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
        # The banned peer is not let back in.
        assert all(p.wire.remote_peer_id != evil.peer_id for p in t.peers.values())
    finally:
        for s in (client, good, evil):
            await s.close()


async def test_resume_after_restart(tmp_path: Path) -> None:
    d = make_content(tmp_path / "src", "v", 1_500_000)
    data = await create_torrent(d, piece_length=16384)
    meta = parse_torrent(data)
    seed, _ = await seeder(tmp_path / "src", data)
    half = asyncio.Event()

    def progress(t: Torrent) -> None:
        if t.have is not None and t.have.count >= t.have.size // 2:
            half.set()

    first = Session(SessionOptions())
    await first.start()
    t1 = await first.add(Torrent.from_metainfo(meta, tmp_path / "out", peers=[("127.0.0.1", seed.port)],
                                               on_progress=progress))
    async with asyncio.timeout(30):
        await half.wait()
    await first.close()
    assert t1.have is not None
    had = t1.have.count
    assert had < meta.info.num_pieces
    second = Session(SessionOptions())
    await second.start()
    try:
        t2 = await second.add(Torrent.from_metainfo(meta, tmp_path / "out", peers=[("127.0.0.1", seed.port)]))
        assert t2.have is not None and t2.have.count >= had // 2  # found on disk, not fetched again
        async with asyncio.timeout(30):
            await t2.completed.wait()
        assert t2.downloaded < meta.info.total_length
        assert (tmp_path / "out" / "v" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
    finally:
        await second.close()
        await seed.close()


async def raw_peer(port: int, info_hash: bytes, peer_id: bytes, *, reserved: bytes = bytes(8)) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(m.handshake(info_hash, peer_id, reserved))
    async with asyncio.timeout(5):
        hs = await reader.readexactly(68)
    assert hs[28:48] == info_hash
    return reader, writer


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side closed (a reset counts: it closed with our bytes still unread)."""
    try:
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("attack", ["oversized", "flood", "out-of-range", "garbage-after-handshake", "unrequested"])
async def test_hostile_peers_are_dropped_and_banned(tmp_path: Path, attack: str) -> None:
    d = make_content(tmp_path / "src", "v", 200_000)
    data = await create_torrent(d, piece_length=16384)
    info_hash = parse_torrent(data).info.info_hash
    sess, _ = await seeder(tmp_path / "src", data)
    pid = b"-EV0001-" + os.urandom(12)
    try:
        reader, writer = await raw_peer(sess.port, info_hash, pid)
        if attack == "oversized":
            writer.write(struct.pack(">IB", 5_000_000, m.PIECE) + b"\0" * 1000)
        elif attack == "flood":
            writer.write(m.simple(m.INTERESTED))
            await writer.drain()
            await asyncio.sleep(0.2)  # unchoked at once: a slot is free
            writer.write(b"".join(m.request(m.REQUEST, i % 12, (i // 12) * 16, 16) for i in range(6000)))
        elif attack == "unrequested":
            block = os.urandom(16384)
            for i in range(300):  # 4.8 MB nobody asked for
                writer.write(m.piece_header(i % 12, 0, len(block)) + block)
        elif attack == "out-of-range":
            writer.write(m.have(10_000))
        else:
            writer.write(b"\0\0\0\x05\x05garbage-bitfield-too-long")
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
        assert sess.is_banned("127.0.0.1", pid)
        # Coming back under the same identity: the handshake is not answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", sess.port)
        writer.write(m.handshake(info_hash, pid, bytes(8)))
        async with asyncio.timeout(5):
            assert await reader.read(100) == b""
        writer.close()
    finally:
        await sess.close()


async def test_node_tracker_http_failures_and_scrape(node_factory: NodeFactory) -> None:
    node = await node_factory("serve", p2p={"bt_port": 0, "tracker_udp_port": 0})
    d = make_content(node.settings.media_dir / "vod", "t1", 50_000)
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "t1", "dir": str(d), "files": ["video.mp4"]})
    async with asyncio.timeout(20):
        await sub.get()
    ih = bytes.fromhex(node.services["torrents"].info("t1")["info_hash"])
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(node_url(node, "/announce?info_hash=short&port=1"))
        assert r.status_code == 200 and b"failure reason" in bencode.decode(r.content)
        other = quote_from_bytes(b"\1" * 20, safe="")
        r = await client.get(node_url(node, f"/announce?info_hash={other}&peer_id={'x' * 20}&port=5&left=1"))
        assert bencode.decode(r.content) == {b"failure reason": b"unregistered torrent"}
        q = f"info_hash={quote_from_bytes(ih, safe='')}&peer_id={'p' * 20}&port=7777&left=5&compact=1"
        r = await client.get(node_url(node, f"/announce?{q}"))
        body = bencode.decode(r.content)
        assert body[b"complete"] == 1 and body[b"incomplete"] == 1
        assert body[b"peers"] == bytes([127, 0, 0, 1]) + struct.pack(">H", node.services["bt_port"])
        r = await client.get(node_url(node, f"/scrape?info_hash={quote_from_bytes(ih, safe='')}"))
        assert bencode.decode(r.content)[b"files"][ih] == {b"complete": 1, b"downloaded": 0, b"incomplete": 1}
        r = await client.get(node_url(node, "/vod/t1/t1.torrent"))
        assert parse_torrent(r.content).info.info_hash == ih


async def test_torrents_are_seeded_again_after_node_restart(node_factory: NodeFactory, tmp_path: Path) -> None:
    flags = {"p2p": {"bt_port": 0, "tracker_udp_port": 0}, "data_dir": tmp_path / "keep"}
    node = await node_factory("serve", **flags)
    d = make_content(node.settings.media_dir / "vod", "r1", 100_000)
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "r1", "dir": str(d), "files": ["video.mp4"]})
    async with asyncio.timeout(20):
        await sub.get()
    await node.stop()
    node2 = await node_factory("serve", **flags)
    info = node2.services["torrents"].info("r1")
    assert info is not None
    t = await download(str(d / "r1.torrent"), tmp_path / "dl", peers=[("127.0.0.1", node2.services["bt_port"])],
                       timeout=30)
    assert t.completed.is_set()


async def test_streaming_window_comes_first(tmp_path: Path) -> None:
    d = make_content(tmp_path / "src", "v", 1_000_000)
    data = await create_torrent(d, piece_length=16384)
    meta = parse_torrent(data)
    seed, _ = await seeder(tmp_path / "src", data)
    order: list[int] = []
    client = Session(SessionOptions(request_queue=4))
    await client.start()
    try:
        def progress(t: Torrent) -> None:
            assert t.have is not None
            order.extend(sorted(set(t.have) - set(order)))

        t = Torrent.from_metainfo(meta, tmp_path / "out", on_progress=progress)
        await client.add(t)
        t.set_playback_position(30 * 16384, window_bytes=4 * 16384)
        assert t.picker is not None
        t.connect_peer(("127.0.0.1", seed.port))
        async with asyncio.timeout(30):
            await t.completed.wait()
        assert sorted(order[:4]) == [30, 31, 32, 33], order[:10]
    finally:
        await client.close()
        await seed.close()


def test_cli_create_info_download(tmp_path: Path) -> None:
    import subprocess
    import sys

    d = make_content(tmp_path / "src", "clip", 300_000)
    run = [sys.executable, "-m", "hivecast", "torrent"]
    out = subprocess.run([*run, "create", str(d), "-t", "http://127.0.0.1:9/announce", "-w", "http://127.0.0.1:9/"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    torrent = tmp_path / "src" / "clip.torrent"
    info = subprocess.run([*run, "info", str(torrent)], capture_output=True, text=True, timeout=60)
    assert "video.mp4" in info.stdout and "web seed:     http://127.0.0.1:9/" in info.stdout
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infoi1ee")
    assert subprocess.run([*run, "info", str(bad)], capture_output=True, timeout=60).returncode == 1

    async def seed_and_download() -> subprocess.CompletedProcess[str]:
        sess, _ = await seeder(tmp_path / "src", torrent.read_bytes())
        try:
            proc = await asyncio.create_subprocess_exec(
                *run, "download", str(torrent), "-o", str(tmp_path / "dl"), "--peer", f"127.0.0.1:{sess.port}",
                "--host", "127.0.0.1", "--timeout", "60", stderr=subprocess.PIPE)
            async with asyncio.timeout(90):
                _, err = await proc.communicate()
            return subprocess.CompletedProcess([], proc.returncode or 0, "", err.decode())
        finally:
            await sess.close()

    result = asyncio.run(seed_and_download())
    assert result.returncode == 0, result.stderr
    assert "done" in result.stderr and "MB/s" in result.stderr and "peers" in result.stderr
    assert (tmp_path / "dl" / "clip" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()


async def test_node_makes_hybrid_torrents_when_asked(node_factory: NodeFactory, tmp_path: Path) -> None:
    node = await node_factory("serve", p2p={"bt_port": 0, "tracker_udp_port": 0, "hybrid": True})
    d = make_content(node.settings.media_dir / "vod", "h1", 100_000)
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "h1", "dir": str(d), "files": ["video.mp4", "index.m3u8"]})
    async with asyncio.timeout(20):
        await sub.get()
    meta = parse_torrent((d / "h1.torrent").read_bytes())
    assert meta.info.hybrid and any(f.pad for f in meta.info.files)
    t = await download(str(d / "h1.torrent"), tmp_path / "dl", peers=[("127.0.0.1", node.services["bt_port"])],
                       timeout=30)
    assert t.completed.is_set()
    assert (tmp_path / "dl" / "h1" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()


async def test_peer_sitting_on_requests_loses_them(tmp_path: Path) -> None:
    """A peer that claims every piece and unchokes, then never sends: its requests go to others."""
    d = make_content(tmp_path / "src", "v", 400_000)
    data = await create_torrent(d, piece_length=16384)
    meta = parse_torrent(data)
    good, _ = await seeder(tmp_path / "src", data)
    staller_id = b"-ST0001-" + os.urandom(12)
    got_requests = asyncio.Event()

    async def staller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(68)
        writer.write(m.handshake(meta.info.info_hash, staller_id, m.reserved_bytes(fast=True, extended=False)))
        writer.write(m.simple(m.HAVE_ALL) + m.simple(m.UNCHOKE))
        with contextlib.suppress(Exception):
            while chunk := await reader.read(65536):
                if m.REQUEST in chunk:
                    got_requests.set()

    server = await asyncio.start_server(staller, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Session(SessionOptions(request_timeout=1.0))
    await client.start()
    try:
        t = await client.add(Torrent.from_metainfo(meta, tmp_path / "out", peers=[("127.0.0.1", port)]))
        async with asyncio.timeout(10):
            await got_requests.wait()
            stalled = next(p for p in t.peers.values() if p.wire.remote_peer_id == staller_id)
            while not stalled.snubbed_until:  # the request timeout takes its blocks back
                await asyncio.sleep(0.05)
        assert not stalled.outstanding and t.picker is not None and not any(
            part.requested for part in t.picker.partial.values())
        t.connect_peer(("127.0.0.1", good.port))
        async with asyncio.timeout(30):
            await t.completed.wait()
        assert (tmp_path / "out" / "v" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
    finally:
        await client.close()
        await good.close()
        server.close()


@pytest.mark.parametrize("hybrid", [False, True])
async def test_our_client_uses_the_nodes_web_seed(node_factory: NodeFactory, tmp_path: Path, hybrid: bool) -> None:
    """No peer at all: every piece comes over HTTP ranges from the node's /vod/ URLs (BEP 19)."""
    node = await node_factory("serve", p2p={"bt_port": 0, "tracker_udp_port": 0, "hybrid": hybrid,
                                            "piece_length": 32768})
    d = node.settings.media_dir / "vod" / "w1"
    (d / "hls").mkdir(parents=True)
    (d / "video.mp4").write_bytes(os.urandom(300_001))
    (d / "hls" / "seg0.ts").write_bytes(os.urandom(50_000))
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "w1", "dir": str(d), "files": ["video.mp4", "hls/seg0.ts"]})
    async with asyncio.timeout(20):
        await sub.get()
    meta = parse_torrent((d / "w1.torrent").read_bytes())
    only_web = tmp_path / "web.torrent"
    only_web.write_bytes(encode_torrent(meta.info.raw, web_seeds=list(meta.url_list)))
    t = await download(str(only_web), tmp_path / "dl", timeout=60)
    assert t.web_downloaded == meta.info.total_length  # piece space (pad zeros are made, not fetched)
    for rel in ("video.mp4", "hls/seg0.ts"):
        assert (tmp_path / "dl" / "w1" / rel).read_bytes() == (d / rel).read_bytes()


@pytest.mark.parametrize("kind", ["udp", "http"])
async def test_our_client_finds_the_seeder_through_the_nodes_tracker(
        node_factory: NodeFactory, tmp_path: Path, kind: str) -> None:
    node = await node_factory("serve", p2p={"bt_port": 0, "tracker_udp_port": 0})
    d = make_content(node.settings.media_dir / "vod", "u1", 300_000)
    sub = node.bus.subscribe("torrent.created")
    node.bus.publish("vod.packaged", {"id": "u1", "dir": str(d), "files": ["video.mp4"]})
    async with asyncio.timeout(20):
        await sub.get()
    meta = parse_torrent((d / "u1.torrent").read_bytes())
    tracker = next(t for t in meta.trackers if t.startswith(kind))
    only = tmp_path / "t.torrent"
    only.write_bytes(encode_torrent(meta.info.raw, announce=[tracker]))  # no web seed, no peers given
    t = await download(str(only), tmp_path / "dl", timeout=30)
    assert t.web_downloaded == 0 and t.downloaded >= meta.info.total_length
    assert (tmp_path / "dl" / "u1" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
    stats = node.services["torrents"].tracker.scrape([meta.info.info_hash], now=time.monotonic())
    assert stats[meta.info.info_hash][0] >= 1


async def test_liar_among_honest_peers_is_found_and_banned(tmp_path: Path) -> None:
    """Good and bad blocks mixed in one piece: the piece is fetched again and, once it passes, the
    peer whose block differed from the good data is banned (smart ban) - or at once if it alone
    sent a failed piece. Nothing bad ever lands on disk."""
    d = make_content(tmp_path / "src", "v", 1_000_000)
    data = await create_torrent(d, piece_length=32768)
    meta = parse_torrent(data)
    good, _ = await seeder(tmp_path / "src", data)
    evil, evil_t = await seeder(tmp_path / "src", data)
    assert evil_t.storage is not None
    real_read = evil_t.storage.read

    def corrupt(index: int, begin: int, length: int) -> bytes:
        block = bytearray(real_read(index, begin, length))
        block[0] ^= 0xFF  # the first byte of every piece it serves is wrong
        return bytes(block)

    evil_t.storage.read = corrupt  # type: ignore[method-assign]
    client = Session(SessionOptions(request_queue=4))
    await client.start()
    try:
        t = await client.add(Torrent.from_metainfo(meta, tmp_path / "out",
                                                   peers=[("127.0.0.1", evil.port), ("127.0.0.1", good.port)]))
        async with asyncio.timeout(60):
            await t.completed.wait()
        assert t.hash_failures >= 1
        assert client.is_banned("127.0.0.1", evil.peer_id, evil.port)
        assert not client.is_banned("127.0.0.1", good.peer_id, good.port)
        assert (tmp_path / "out" / "v" / "video.mp4").read_bytes() == (d / "video.mp4").read_bytes()
    finally:
        for s in (client, good, evil):
            await s.close()
