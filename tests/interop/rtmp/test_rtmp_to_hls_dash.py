"""RTMP in, HLS and DASH out: the stream an encoder pushes decodes through the live packager."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.conftest import NodeFactory, node_url
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live
from tests.interop.rtmp.test_ffmpeg_rtmp import _enhanced_ffmpeg

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


HEVC = ["-c:v", "libx265", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
        "-x265-params", "log-level=error", "-c:a", "aac", "-b:a", "64k"]


async def test_hevc_over_enhanced_rtmp_decodes_from_fmp4_hls_and_dash(node_factory: NodeFactory) -> None:
    exe = _enhanced_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg with libx265 and Enhanced RTMP (FLV HEVC) support")
    node = await node_factory(open_publish=True)
    pub = await publish_rtmp(exe, rtmp_url(node, "hevc"), 25, HEVC)
    try:
        stream = await wait_live(node, "hevc")
        assert {t.codec for t in stream.tracks} == {"h265", "aac"}
        await wait_playlist(node_url(node, "/live/hevc/v0/index.m3u8"), 2)
        async with httpx.AsyncClient() as http:
            master = (await http.get(node_url(node, "/live/hevc/index.m3u8"))).text
            mpd = (await http.get(node_url(node, "/live/hevc/manifest.mpd"))).text
            init = (await http.get(node_url(node, "/live/hevc/v0/init-1.mp4"))).content
        # libx265 at 320x240: Main profile (general_profile_idc 1, compatibility flags 1 and 2: "6"), Main tier.
        codecs = re.search(r'CODECS="(hvc1\.[^",]+)', master)
        assert codecs is not None, master
        assert codecs.group(1).startswith("hvc1.1.6.L") and "RESOLUTION=320x240" in master, master
        assert "FRAME-RATE=25.000" in master, master
        assert f'codecs="{codecs.group(1)}"' in mpd, mpd
        assert b"hvc1" in init and b"hvcC" in init
        (rc1, frames1, err1), (rc2, frames2, err2) = await asyncio.gather(
            decode(exe, node_url(node, "/live/hevc/index.m3u8"), 5),
            decode(exe, node_url(node, "/live/hevc/manifest.mpd"), 5))
        assert rc1 == 0 and not err1, err1
        assert rc2 == 0 and not err2, err2
        assert frames1 >= 100 and frames2 >= 100
    finally:
        rc, err = await finish(pub, 40)
    assert rc == 0, err
