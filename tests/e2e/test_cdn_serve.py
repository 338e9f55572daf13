"""`hivecast serve`: the edge cache sits in-process in front of the origin's /live and /vod."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hivecast.cdn.edge import EdgeCache
from tests.conftest import NodeFactory, node_url
from tests.e2e.cdn_support import until


async def test_serve_caches_playlists_and_sends_segments_straight(node_factory: NodeFactory) -> None:
    node = await node_factory("serve")
    edge: EdgeCache = node.services["edge_cache"]
    vod = node.settings.media_dir / "vod" / "film"
    vod.mkdir(parents=True)
    data = bytes(range(256)) * 2000  # 512 KB: over the memory tier's object limit
    (vod / "seg1.ts").write_bytes(data)
    (vod / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2,\nseg1.ts\n")
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(node_url(node, "/vod/film/index.m3u8"))
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl" and r.headers["x-cache"] == "MISS"
        await until(lambda: not edge.inflight, within=5)
        r = await c.get(node_url(node, "/vod/film/index.m3u8"))
        assert r.headers["x-cache"] == "HIT" and r.text.startswith("#EXTM3U")
        r = await c.get(node_url(node, "/vod/film/seg1.ts"), headers={"range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200] and r.headers["x-cache"] == "ORIGIN"
        r = await c.get(node_url(node, "/vod/film/seg1.ts"))
        assert r.content == data and r.headers["x-cache"] == "ORIGIN"
        r = await c.get(node_url(node, "/vod/film/seg1.ts"), headers={"if-none-match": r.headers["etag"]})
        assert r.status_code == 304 and not edge.inflight and edge.store.disk.used == 0
        assert (await c.get(node_url(node, "/vod/film/missing.ts"))).status_code == 404
        node.bus.publish("cdn.purge", {"id": "1", "kind": "prefix", "values": ["/vod/film/"]})
        await asyncio.sleep(0.05)
        assert (await c.get(node_url(node, "/vod/film/index.m3u8"))).headers["x-cache"] == "MISS"
        assert (await c.get(node_url(node, "/healthz"))).status_code == 200
        assert node.services["edge_registry"].list_edges() == []


@pytest.mark.parametrize("direct", [False])
async def test_serve_can_cache_everything(node_factory: NodeFactory, direct: bool) -> None:
    node = await node_factory("serve", cdn={"embedded_direct": direct})
    edge: EdgeCache = node.services["edge_cache"]
    vod = node.settings.media_dir / "vod" / "film"
    vod.mkdir(parents=True)
    data = bytes(range(256)) * 2000
    (vod / "seg1.ts").write_bytes(data)
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(node_url(node, "/vod/film/seg1.ts"))
        assert r.content == data and r.headers["x-cache"] == "MISS"
        await until(lambda: not edge.inflight, within=5)
        r = await c.get(node_url(node, "/vod/film/seg1.ts"), headers={"range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200] and r.headers["x-cache"] == "HIT"
