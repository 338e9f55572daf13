"""RTMP in, HLS and DASH out: the stream an encoder pushes decodes through the live packager."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import NodeFactory, node_url
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop, pytest.mark.slow]


async def wait_playlist(url: str, segments: int, timeout: float = 30.0) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout):
        while True:
            r = await http.get(url)
            if r.status_code == 200 and r.text.count("#EXTINF") >= segments:
                return
            await asyncio.sleep(0.3)


async def test_h264_aac_over_rtmp_decodes_from_hls_and_dash(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True)
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "enc"), 20)
    try:
        await wait_live(node, "enc")
        await wait_playlist(node_url(node, "/live/enc/v0/index.m3u8"), 2)
        (rc1, frames1, err1), (rc2, frames2, err2) = await asyncio.gather(
            decode(ffmpeg_exe, node_url(node, "/live/enc/index.m3u8"), 5),
            decode(ffmpeg_exe, node_url(node, "/live/enc/manifest.mpd"), 5))
        assert rc1 == 0 and not err1, err1
        assert rc2 == 0 and not err2, err2
        assert frames1 >= 100 and frames2 >= 100  # 5 s at 25 fps, less what the window starts after
    finally:
        rc, err = await finish(pub, 40)
    assert rc == 0, err
