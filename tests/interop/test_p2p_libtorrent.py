"""Interop with libtorrent both ways: trackers (HTTP, UDP), web seeds, direct peers, magnets, hybrid torrents."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from hivecast.node import Node
from hivecast.p2p.client import download
from hivecast.p2p.magnet import parse_magnet
from hivecast.p2p.metainfo import Metainfo, encode_torrent, parse_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent
from tests.conftest import NodeFactory
from tests.interop.p2p_lt import (
    add,
    assert_same_tree,
    libtorrent,
    lt_make_torrent,
    lt_session,
    make_files,
    torrent_info,
    wait_seeding,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

P2P_FLAGS = {"p2p": {"bt_port": 0, "tracker_udp_port": 0, "piece_length": 65536}}
VIDEO_FILES = {"720p.mp4": 1_500_000, "hls/seg0.ts": 300_000, "hls/seg1.ts": 250_001, "hls/index.m3u8": 300}


async def packaged_video(node: Node, video_id: str = "vid42") -> tuple[Path, Metainfo]:
    """What the packager would do: files under media/vod/ID, then a `vod.packaged` event."""
    vod = node.settings.media_dir / "vod"
    d = make_files(vod, video_id, VIDEO_FILES)
    sub = node.bus.subscribe("torrent.*")
    node.bus.publish("vod.packaged", {"id": video_id, "dir": str(d), "files": sorted(VIDEO_FILES)})
    async with asyncio.timeout(30):
        event = await sub.get()
    sub.close()
    assert event.topic == "torrent.created", event.data
    return d, parse_torrent((d / f"{video_id}.torrent").read_bytes())


async def test_packaged_video_gets_torrent_and_service_info(node_factory: NodeFactory, tmp_path: Path) -> None:
    node = await node_factory("serve", **P2P_FLAGS)
    _, meta = await packaged_video(node)
    info = node.services["torrents"].info("vid42")
    assert info is not None and info["info_hash"] == meta.info.info_hash.hex()
    assert info["torrent_url"].endswith("/vod/vid42/vid42.torrent")
    mag = parse_magnet(info["magnet"])
    assert mag.info_hash == meta.info.info_hash and mag.web_seeds == meta.url_list
    assert node.services["torrents"].info("nope") is None
    assert sorted("/".join(f.path) for f in meta.info.files) == sorted(VIDEO_FILES)
    assert meta.url_list == (f"http://127.0.0.1:{node.services['http_port']}/vod/",)
    assert any(t.startswith("udp://") for t in meta.trackers) and any(t.endswith("/announce") for t in meta.trackers)


@pytest.mark.parametrize("via", ["http-tracker", "udp-tracker", "connect-peer", "web-seed"])
async def test_libtorrent_downloads_packaged_video(node_factory: NodeFactory, tmp_path: Path, via: str) -> None:
    node = await node_factory("serve", **P2P_FLAGS)
    d, meta = await packaged_video(node)
    http_tracker = next(t for t in meta.trackers if t.startswith("http"))
    udp_tracker = next(t for t in meta.trackers if t.startswith("udp"))
    # Each route on its own: the torrent libtorrent gets names only that route.
    announce = {"http-tracker": [http_tracker], "udp-tracker": [udp_tracker]}.get(via, [])
    seeds = list(meta.url_list) if via == "web-seed" else []
    data = encode_torrent(meta.info.raw, announce=announce, web_seeds=seeds)
    ses = lt_session()
    out = tmp_path / "lt"
    h = add(ses, out, ti=torrent_info(data))
    if via == "connect-peer":
        h.connect_peer(("127.0.0.1", node.services["bt_port"]))
    await wait_seeding(h, what=via)
    await assert_same_tree(d, out / "vid42")
    st = h.status()
    if via == "web-seed":
        assert node.services["torrents"].session.torrents[meta.info.info_hash].uploaded == 0
    else:
        assert node.services["torrents"].session.torrents[meta.info.info_hash].uploaded >= meta.info.total_length
    assert st.total_wanted == meta.info.total_length


@pytest.mark.parametrize("link", ["bare+connect_peer", "node-magnet"])
async def test_libtorrent_resolves_our_magnet_by_ut_metadata(
        node_factory: NodeFactory, tmp_path: Path, link: str) -> None:
    node = await node_factory("serve", **P2P_FLAGS)
    d, meta = await packaged_video(node)
    ses = lt_session()
    if link == "node-magnet":
        # The link the API hands out: trackers (HTTP, UDP) and the web seed; no peer given.
        magnet = node.services["torrents"].info("vid42")["magnet"]
        h = add(ses, tmp_path / "lt", magnet=magnet)
    else:
        magnet = f"magnet:?xt=urn:btih:{meta.info.info_hash.hex()}&dn=vid42"
        h = add(ses, tmp_path / "lt", magnet=magnet)
        h.connect_peer(("127.0.0.1", node.services["bt_port"]))
    await wait_seeding(h, what="magnet")
    await assert_same_tree(d, tmp_path / "lt" / "vid42")


@pytest.mark.parametrize("hybrid", [True, False])
async def test_our_client_downloads_from_libtorrent_seed(tmp_path: Path, hybrid: bool) -> None:
    src = tmp_path / "src"
    d = make_files(src, "movie", {"a.mp4": 1_000_000, "sub/b.ts": 123_457, "c.txt": 10})
    data = lt_make_torrent(src, "movie", 32768, hybrid=hybrid)
    meta = parse_torrent(data)
    assert meta.info.hybrid == hybrid
    if hybrid:
        assert any(f.pad for f in meta.info.files)  # BEP 47 pad files in the v1 view
    ses = lt_session()
    h = add(ses, src, ti=torrent_info(data))
    await wait_seeding(h, what="seed check")
    (tmp_path / "t.torrent").write_bytes(data)
    t = await download(str(tmp_path / "t.torrent"), tmp_path / "out", peers=[("127.0.0.1", ses.listen_port())],
                       timeout=60)
    assert t.have is not None and t.have.complete
    await assert_same_tree(d, tmp_path / "out" / "movie")
    assert not (tmp_path / "out" / "movie" / ".pad").exists()


async def test_our_client_resolves_libtorrent_magnet(tmp_path: Path) -> None:
    lt = libtorrent()
    src = tmp_path / "src"
    d = make_files(src, "clip", {"x.mp4": 700_000, "y.mp4": 5})
    data = lt_make_torrent(src, "clip", 16384)
    ses = lt_session()
    h = add(ses, src, ti=torrent_info(data))
    await wait_seeding(h, what="seed check")
    magnet = lt.make_magnet_uri(h) + f"&x.pe=127.0.0.1:{ses.listen_port()}"
    t = await download(magnet, tmp_path / "out", timeout=60)
    assert t.info is not None and t.info.info_hash == parse_torrent(data).info.info_hash
    await assert_same_tree(d, tmp_path / "out" / "clip")


async def test_libtorrent_downloads_multi_file_from_our_client_session(tmp_path: Path) -> None:
    """Our plain seeder (no node) serving a multi-file torrent we made, to libtorrent over connect_peer."""
    from hivecast.p2p.metainfo import create_torrent

    d = make_files(tmp_path / "src", "pack", {"one.bin": 400_000, "two/three.bin": 99_999, "zero": 0})
    data = await create_torrent(d, piece_length=16384)
    sess = Session(SessionOptions())
    await sess.start()
    try:
        await sess.add(Torrent.from_metainfo(parse_torrent(data), tmp_path / "src", seed_only=True))
        ses = lt_session()
        h = add(ses, tmp_path / "lt", ti=torrent_info(data))
        h.connect_peer(("127.0.0.1", sess.port))
        await wait_seeding(h)
        await assert_same_tree(d, tmp_path / "lt" / "pack")
    finally:
        await sess.close()


async def test_tshark_sees_no_malformed_bittorrent(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    from hivecast.p2p.metainfo import create_torrent

    d = make_files(tmp_path / "src", "cap", {"a.bin": 300_000, "b.bin": 70_000})
    data = await create_torrent(d, piece_length=16384)
    # Short choke rounds: choke/unchoke, keep-alives and ut_pex also go through the dissector.
    sess = Session(SessionOptions(choke_interval=0.3))
    await sess.start()
    pcap = tmp_path / "bt.pcap"
    port = sess.port
    ses = lt_session()
    lt_port = ses.listen_port()
    cap = await asyncio.create_subprocess_exec(
        tshark, "-i", "lo", "-w", str(pcap), "-f", f"tcp port {port}", "-q",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert cap.stderr is not None
        seen = b""
        try:
            async with asyncio.timeout(30):  # traffic starts only once tshark says it captures
                while b"Capturing on" not in seen:
                    line = await cap.stderr.readline()
                    if not line:
                        break
                    seen += line
        except TimeoutError:
            pass
        if b"Capturing on" not in seen:
            pytest.skip(f"tshark cannot capture here: {seen.decode(errors='replace')[-200:]}")
        await sess.add(Torrent.from_metainfo(parse_torrent(data), tmp_path / "src", seed_only=True))
        # Both directions in one capture: libtorrent downloads from us, then we download from it.
        h = add(ses, tmp_path / "lt", ti=torrent_info(data))
        h.connect_peer(("127.0.0.1", port))
        await wait_seeding(h)
        (tmp_path / "c.torrent").write_bytes(data)
        await download(str(tmp_path / "c.torrent"), tmp_path / "ours", peers=[("127.0.0.1", lt_port)],
                       timeout=60, session=None, options=SessionOptions(port=0))
        await asyncio.sleep(1.0)
    finally:
        if cap.returncode is None:
            cap.terminate()
        async with asyncio.timeout(10):
            await cap.wait()
        await sess.close()
    decode_as = ["-d", f"tcp.port=={port},bittorrent"]
    packets = await tshark_read(tshark, pcap, *decode_as, "-Y", "bittorrent")
    assert packets.count("\n") > 10, packets[-500:]
    malformed = await tshark_read(tshark, pcap, *decode_as, "-Y", "_ws.malformed")
    assert malformed.strip() == "", malformed[:2000]


async def tshark_read(tshark: str, pcap: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(tshark, "-r", str(pcap), *args, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return out.decode(errors="replace")


@pytest.mark.parametrize("piece_length", [16384, 65536])
async def test_our_hybrid_torrents_match_libtorrent_and_seed_to_it(tmp_path: Path, piece_length: int) -> None:
    """Hybrid v1+v2 creation (BEP 52 merkle roots, piece layers, BEP 47 pads) byte-identical to libtorrent's."""
    from hivecast.p2p import bencode
    from hivecast.p2p.metainfo import create_torrent

    d = make_files(tmp_path / "src", "hyb", {"a.mp4": 300_001, "sub/b.ts": 40_000, "empty": 0, "c": 16384})
    ours = await create_torrent(d, piece_length=piece_length, hybrid=True)
    theirs = lt_make_torrent(tmp_path / "src", "hyb", piece_length, hybrid=True)
    o, t = bencode.decode(ours), bencode.decode(theirs)
    assert o[b"info"] == t[b"info"] and o[b"piece layers"] == t[b"piece layers"]
    meta = parse_torrent(ours)
    assert meta.info.hybrid
    sess = Session(SessionOptions())
    await sess.start()
    try:
        await sess.add(Torrent.from_metainfo(meta, tmp_path / "src", seed_only=True))
        ses = lt_session()
        h = add(ses, tmp_path / "lt", ti=torrent_info(ours))
        h.connect_peer(("127.0.0.1", sess.port))
        await wait_seeding(h, what="hybrid from our seeder")
        await assert_same_tree(d, tmp_path / "lt" / "hyb")
    finally:
        await sess.close()


async def test_libtorrent_learns_peers_from_our_pex(tmp_path: Path) -> None:
    """ut_pex (BEP 11): libtorrent can only finish by hearing of our seed from our hub's PEX.

    The hub has no data and never requests any (request queue 0); the seed connects only to the
    hub. libtorrent is told about the hub alone, so it must take the seed's address from the
    hub's PEX message to download anything.
    """
    from hivecast.p2p.metainfo import create_torrent

    d = make_files(tmp_path / "src", "px", {"a.bin": 200_000})
    data = await create_torrent(d, piece_length=16384)
    meta = parse_torrent(data)
    hub = Session(SessionOptions(choke_interval=0.5, request_queue=0))
    seed = Session(SessionOptions())
    await hub.start()
    await seed.start()
    try:
        await hub.add(Torrent.from_metainfo(meta, tmp_path / "hub"))
        ses = lt_session()
        h = add(ses, tmp_path / "lt", ti=torrent_info(data))
        h.connect_peer(("127.0.0.1", hub.port))
        hub_t = hub.torrents[meta.info.info_hash]
        async with asyncio.timeout(30):
            while not any(p.wire.remote_ext.get("ut_pex") for p in hub_t.peers.values()):
                await asyncio.sleep(0.1)
        seed_t = await seed.add(Torrent.from_metainfo(meta, tmp_path / "src", seed_only=True))
        seed_t.connect_peer(("127.0.0.1", hub.port))
        await wait_seeding(h, what="download from a peer learned by PEX")
        assert seed_t.uploaded >= meta.info.total_length and hub_t.uploaded == 0
        await assert_same_tree(d, tmp_path / "lt" / "px")
    finally:
        await hub.close()
        await seed.close()
