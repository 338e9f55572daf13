"""`hivecast serve`: the edge cache sits in-process in front of the origin's /live and /vod."""

from __future__ import annotations

import asyncio

import httpx
from cdn_support import until
from tests.conftest import NodeFactory, node_url

from hivecast.cdn.edge import EdgeCache


async def test_serve_caches_media_in_process(node_factory: NodeFactory) -> None:
    node = await node_factory("serve")
    edge: EdgeCache = node.services["edge_cache"]
    vod = node.settings.media_dir / "vod" / "film"
    vod.mkdir(parents=True)
    data = bytes(range(256)) * 2000
    (vod / "seg1.ts").write_bytes(data)
    (vod / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2,\nseg1.ts\n")
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(node_url(node, "/vod/film/seg1.ts"))
        assert r.status_code == 200 and r.content == data and r.headers["x-cache"] in ("MISS", "HIT")
        await until(lambda: not (edge.inflight), within=5)
        r = await c.get(node_url(node, "/vod/film/seg1.ts"), headers={"range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200] and r.headers["x-cache"] == "HIT"
        r = await c.get(node_url(node, "/vod/film/index.m3u8"))
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
        r = await c.get(node_url(node, "/vod/film/missing.ts"))
        assert r.status_code == 404
        node.bus.publish("cdn.purge", {"id": "1", "kind": "prefix", "values": ["/vod/film/"]})
        await asyncio.sleep(0.05)
        assert (await c.get(node_url(node, "/vod/film/seg1.ts"))).headers["x-cache"] == "MISS"
        assert (await c.get(node_url(node, "/healthz"))).status_code == 200
        assert node.services["edge_registry"].list_edges() == []
