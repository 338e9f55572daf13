"""RTMP in, HLS and DASH out: the stream an encoder pushes decodes through the live packager."""

from __future__ import annotations

import asyncio
from typing import Any

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


# The defaults, and one-second segments without LL-HLS (one GOP each at -g 25): the HLS reader starts
# three segments from the live edge, so it reads across it, through segments held until they close.
# ffmpeg's DASH reader cannot follow a live SegmentTimeline past its end: on each MPD refresh it
# takes the timeline index of the segment it wants for its $Number$ (libavformat/dashdec.c,
# refresh_manifest), which is one segment back at the live edge and whenever the window slides, so it
# reads a segment twice. It starts 60 s before the end of the timeline (the window's start), so the
# MPD is read once the window holds more than the 5 s decoded, and the window does not slide meanwhile.
SETTINGS: list[tuple[dict[str, Any], int]] = [
    ({}, 2),
    ({"segment_seconds": 1.0, "low_latency": False, "live_window": 30, "live_retention": 40}, 7),
]


@pytest.mark.parametrize(("packaging", "segments"), SETTINGS, ids=["defaults", "1s-no-ll"])
async def test_h264_aac_over_rtmp_decodes_from_hls_and_dash(node_factory: NodeFactory, ffmpeg_exe: str,
                                                            packaging: dict[str, Any], segments: int) -> None:
    node = await node_factory(open_publish=True, packaging=packaging)
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "enc"), 20)
    try:
        await wait_live(node, "enc")
        await wait_playlist(node_url(node, "/live/enc/v0/index.m3u8"), segments)
        (rc1, frames1, err1), (rc2, frames2, err2) = await asyncio.gather(
            decode(ffmpeg_exe, node_url(node, "/live/enc/index.m3u8"), 5),
            decode(ffmpeg_exe, node_url(node, "/live/enc/manifest.mpd"), 5))
        assert rc1 == 0 and not err1, err1
        assert rc2 == 0 and not err2, err2
        assert frames1 >= 100 and frames2 >= 100  # 5 s at 25 fps, less what the window starts after
    finally:
        rc, err = await finish(pub, 40)
    assert rc == 0, err
