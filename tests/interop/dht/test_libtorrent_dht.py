"""Our DHT node against real libtorrent DHT sessions on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hivecast.dht.server import DhtServer
from tests.conftest import free_port
from tests.interop.dht.ltdht import lt, lt_session, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _free_udp_tcp() -> int:
    # libtorrent binds the same port for TCP and UDP (DHT): find one free for both.
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


async def test_libtorrent_queries_us_and_answers_our_queries() -> None:
    ours = DhtServer()
    await ours.start()
    port = _free_udp_tcp()
    session = lt_session(port, f"127.0.0.1:{ours.port}")
    try:
        # libtorrent bootstraps through us: it sends us queries and lands in our routing table.
        await wait_for(lambda: sum(ours.stats()["queries_in"].values()) > 0, timeout=30)
        await wait_for(lambda: len(ours.node.table) > 0, timeout=30)
        # It answers our ping and our find_node.
        node = await ours.ping(("127.0.0.1", port), timeout=5)
        assert node is not None
        lookup = await ours.find_node(hashlib.sha1(b"x").digest(), timeout=10)
        assert lookup.stats.replies >= 1
        assert ("127.0.0.1", port) in {c.node.addr for c in lookup.closest()}
        assert ours.node.stats.malformed == 0
    finally:
        del session
        await ours.stop()


async def test_lookups_across_mixed_network_find_announced_peers() -> None:
    """Three of our nodes and four libtorrent nodes; each side's announce is found by the other."""
    hub = DhtServer()
    await hub.start()
    boot = f"127.0.0.1:{hub.port}"
    ours = [hub]
    for _ in range(2):
        server = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
        await server.start()
        ours.append(server)
    ports = [_free_udp_tcp() for _ in range(4)]
    sessions = [lt_session(p, boot) for p in ports]
    try:
        await wait_for(lambda: len(hub.node.table) >= 6, timeout=40)
        for server in ours[1:]:
            lk = await server.find_node(server.node.id, timeout=10)  # refresh: meet the libtorrent nodes
            assert lk.stats.replies >= 1
        # libtorrent announces an info-hash; our (non-hub) node finds it.
        lt_hash = hashlib.sha1(b"announced by libtorrent").digest()
        sessions[0].dht_announce(lt.sha1_hash(lt_hash), 40001, 0)

        async def lt_peer_found() -> bool:
            lookup = await ours[2].get_peers(lt_hash, timeout=10)
            return ("127.0.0.1", 40001) in lookup.peers or ("127.0.0.1", ports[0]) in lookup.peers

        for _ in range(20):
            if await lt_peer_found():
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail("our lookup did not find the peer libtorrent announced")
        # We announce; a libtorrent node finds us.
        our_hash = hashlib.sha1(b"announced by hivecast").digest()
        lookup = await ours[1].get_peers(our_hash, announce_port=40002, timeout=10)
        assert any(c.token for c in lookup.closest())
        found: list[Any] = []

        def lt_found() -> bool:
            sessions[3].dht_get_peers(lt.sha1_hash(our_hash))
            for alert in sessions[3].pop_alerts():
                if isinstance(alert, lt.dht_get_peers_reply_alert):
                    found.extend(alert.peers())
            return any(p[1] == 40002 for p in found)

        await wait_for(lt_found, timeout=30, interval=1.0)
    finally:
        sessions.clear()
        for server in ours:
            await server.stop()


def _make_torrent(path: Path) -> bytes:
    fs = lt.file_storage()
    lt.add_files(fs, str(path))
    ct = lt.create_torrent(fs, 16384, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(path.parent))
    return bytes(lt.bencode(ct.generate()))


async def test_libtorrent_downloads_magnet_found_only_through_our_node(tmp_path: Path) -> None:
    """No tracker: the seeder (a libtorrent session announcing over the DHT) and the downloader both
    know only our node; the downloader resolves the magnet through the DHT and downloads the file."""
    ours = DhtServer()
    await ours.start()
    boot = f"127.0.0.1:{ours.port}"
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    payload = hashlib.sha256(b"hivecast").digest() * 8192  # 256 KiB
    (seed_dir / "video.bin").write_bytes(payload)
    info = lt.torrent_info(lt.bdecode(_make_torrent(seed_dir / "video.bin")))
    info_hash = bytes.fromhex(str(info.info_hash()))
    seeder = lt_session(_free_udp_tcp(), boot)
    leecher = lt_session(_free_udp_tcp(), boot)
    try:
        seed_params = lt.add_torrent_params()
        seed_params.ti = info
        seed_params.save_path = str(seed_dir)
        sh = seeder.add_torrent(seed_params)
        await wait_for(lambda: sh.status().is_seeding, timeout=30)

        def announced() -> bool:
            sh.force_dht_announce()
            return len(ours.node.peer_store.get(info_hash, ours._now())) > 0

        await wait_for(announced, timeout=40, interval=1.0)
        down = tmp_path / "down"
        down.mkdir()
        magnet = f"magnet:?xt=urn:btih:{info_hash.hex()}&dn=video.bin"
        params = lt.parse_magnet_uri(magnet)
        params.save_path = str(down)
        lh = leecher.add_torrent(params)
        await wait_for(lambda: lh.status().is_seeding, timeout=60, interval=0.5)
        assert (down / "video.bin").read_bytes() == payload
        assert ours.node.stats.queries_in.get("get_peers", 0) >= 1
    finally:
        del seeder, leecher
        await ours.stop()


async def test_our_client_finds_magnet_peers_through_dht_and_downloads(tmp_path: Path) -> None:
    """The other direction: a libtorrent seeder announces over the DHT; our DHT node finds it for the
    magnet and our BitTorrent client downloads from the peers it found (no tracker)."""
    from hivecast.dht.cli import info_hash_from
    from hivecast.p2p.client import download

    hub = DhtServer()
    await hub.start()
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    payload = hashlib.sha256(b"magnet").digest() * 4096
    (seed_dir / "clip.bin").write_bytes(payload)
    info = lt.torrent_info(lt.bdecode(_make_torrent(seed_dir / "clip.bin")))
    magnet = f"magnet:?xt=urn:btih:{info.info_hash()}&dn=clip.bin"
    seeder = lt_session(_free_udp_tcp(), f"127.0.0.1:{hub.port}")
    finder = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
    await finder.start()
    try:
        params = lt.add_torrent_params()
        params.ti = info
        params.save_path = str(seed_dir)
        handle = seeder.add_torrent(params)
        await wait_for(lambda: handle.status().is_seeding, timeout=30)
        await wait_for(lambda: (handle.force_dht_announce(), hub.node.peer_store.peer_count())[1], timeout=40,
                       interval=1.0)
        peers = await finder.peers_for(info_hash_from(magnet), timeout=10)
        assert ("127.0.0.1", seeder.listen_port()) in peers
        torrent = await download(magnet, tmp_path / "out", peers=peers, timeout=60)
        assert torrent.have is not None and torrent.have.complete
        assert (tmp_path / "out" / "clip.bin").read_bytes() == payload
    finally:
        del seeder
        await finder.stop()
        await hub.stop()


@contextlib.asynccontextmanager
async def _item_network() -> AsyncIterator[tuple[DhtServer, list[Any]]]:
    """A hub of ours, one more node of ours and two libtorrent sessions, all joined through the hub."""
    hub = DhtServer()
    await hub.start()
    ours = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
    await ours.start()
    sessions = [lt_session(_free_udp_tcp(), f"127.0.0.1:{hub.port}") for _ in range(2)]
    try:
        await wait_for(lambda: len(hub.node.table) >= 3, timeout=30)
        await ours.find_node(ours.node.id, timeout=10)
        yield ours, sessions
    finally:
        sessions.clear()
        await ours.stop()
        await hub.stop()


async def test_bep44_immutable_items_with_libtorrent() -> None:
    """We put an item that libtorrent gets, and get the item libtorrent puts (BEP 44, immutable)."""
    async with _item_network() as (ours, sessions):
        target = await ours.put_immutable(b"hello from hivecast")
        got: list[Any] = []

        def lt_got() -> bool:
            sessions[1].dht_get_immutable_item(lt.sha1_hash(target))
            for alert in sessions[1].pop_alerts():
                if isinstance(alert, lt.dht_immutable_item_alert) and alert.item is not None:
                    got.append(alert.item)
            return any(g == b"hello from hivecast" for g in got)

        await wait_for(lt_got, timeout=30, interval=1.0)
        lt_target = sessions[0].dht_put_immutable_item(b"hello from libtorrent")
        lt_hash = bytes.fromhex(str(lt_target))

        async def we_get() -> bool:
            return await ours.get_immutable(lt_hash, timeout=10) == b"hello from libtorrent"

        for _ in range(20):
            if await we_get():
                break
            await asyncio.sleep(1.0)
        else:
            pytest.fail("our get did not find libtorrent's item")


def _libtorrent_secret(seed: bytes) -> bytes:
    """The 64-byte ed25519 secret libtorrent signs with (ref10 form): SHA-512 of the seed, clamped."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


async def test_bep44_mutable_items_with_libtorrent() -> None:
    """Signed items cross both ways: libtorrent verifies ours, we verify libtorrent's (BEP 44, mutable)."""
    from hivecast.dht.items import public_key_of

    async with _item_network() as (ours, sessions):
        our_seed = hashlib.sha256(b"hivecast seed").digest()
        first = await ours.put_mutable(our_seed, b"channel v1", salt=b"live")
        item = await ours.put_mutable(our_seed, b"channel v2", salt=b"live")
        assert (first.seq, item.seq) == (1, 2)  # the second put read the first and went one higher
        got: list[Any] = []

        def lt_got() -> bool:
            sessions[1].dht_get_mutable_item(item.k, b"live")
            for alert in sessions[1].pop_alerts():
                if isinstance(alert, lt.dht_mutable_item_alert) and alert.item:
                    got.append((alert.seq, alert.item))
            return any(seq == 2 and value in (b"channel v2", "channel v2") for seq, value in got)

        await wait_for(lt_got, timeout=30, interval=1.0)

        lt_seed = hashlib.sha256(b"libtorrent seed").digest()
        lt_public = public_key_of(lt_seed)
        sessions[0].dht_put_mutable_item(_libtorrent_secret(lt_seed), lt_public, b"from libtorrent", b"salty")
        for _ in range(20):
            theirs = await ours.get_mutable(lt_public, salt=b"salty", timeout=10)
            if theirs is not None and theirs.v == b"from libtorrent":
                assert theirs.valid() and theirs.seq >= 1
                break
            await asyncio.sleep(1.0)
        else:
            pytest.fail("our get did not find libtorrent's signed item")
