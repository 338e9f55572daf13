"""HTTP-FLV through an edge: one upstream connection to the origin, fanned out to the edge's viewers."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import NodeFactory, node_url
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop]


async def test_edge_passes_httpflv_through(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    origin = await node_factory(open_publish=True, rtmp={"port": 0})
    edge = await node_factory("edge", origin_url=node_url(origin))
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(origin, "e"), 12)
    try:
        await wait_live(origin, "e")
        results = await asyncio.gather(*(decode(ffmpeg_exe, node_url(edge, "/live/e.flv"), 4) for _ in range(3)))
        for rc, frames, err in results:
            assert rc == 0 and not err, err
            assert frames >= 90
        origin_hub = origin.services["rtmp_fanout"].hubs["e"]
        assert origin_hub.readers_total == 1  # the three edge viewers shared one upstream
        assert edge.services["flv_edge"].fanout.hubs["e"].readers_total == 3
    finally:
        await finish(pub, 30)
