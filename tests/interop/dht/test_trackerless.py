"""Trackerless: our node seeds a packaged video and announces it on its DHT node; a libtorrent
session that knows only our DHT node (no tracker, no web seed, no peer address) resolves the magnet
and downloads the video."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import NodeFactory
from tests.interop.dht.ltdht import lt, lt_session, wait_for
from tests.interop.dht.test_libtorrent_dht import _free_udp_tcp

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

FLAGS = {
    "p2p": {"bt_port": 0, "tracker_udp_port": 0, "piece_length": 65536, "http_tracker": False,
            "udp_tracker": False, "web_seeds": False},
    "dht": {"dht_port": 0},
}


async def test_libtorrent_downloads_our_seed_found_through_our_dht_node(node_factory: NodeFactory,
                                                                       tmp_path: Path) -> None:
    node = await node_factory("serve", **FLAGS)
    dht = node.services["dht"]
    video = node.settings.media_dir / "vod" / "vid7"
    video.mkdir(parents=True)
    payload = bytes(range(256)) * 4096  # 1 MiB
    (video / "720p.mp4").write_bytes(payload)
    sub = node.bus.subscribe("torrent.*")
    node.bus.publish("vod.packaged", {"id": "vid7", "dir": str(video), "files": ["720p.mp4"]})
    async with asyncio.timeout(30):
        event = await sub.get()
    sub.close()
    assert event.topic == "torrent.created", event.data
    info_hash = bytes.fromhex(event.data["info_hash"])
    meta_trackers = node.services["torrents"].videos["vid7"].trackers
    assert not meta_trackers  # nothing but the DHT can lead a client to us
    await wait_for(lambda: dht.node.peer_store.get(info_hash, dht._now()), timeout=20)

    leecher = lt_session(_free_udp_tcp(), f"127.0.0.1:{dht.port}")
    params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{info_hash.hex()}&dn=vid7")
    params.save_path = str(tmp_path / "lt")
    handle = leecher.add_torrent(params)
    await wait_for(lambda: handle.status().is_seeding, timeout=90, interval=0.5)
    assert (tmp_path / "lt" / "vid7" / "720p.mp4").read_bytes() == payload
    assert dht.node.stats.queries_in.get("get_peers", 0) >= 1
    del leecher
