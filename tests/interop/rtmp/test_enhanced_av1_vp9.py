"""ffmpeg publishes AV1 and VP9 over Enhanced RTMP; they play back over RTMP and HTTP-FLV with their records."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import httpx
import pytest

from hivecast.rtmp import flv
from hivecast.rtmp.chunk import VIDEO
from tests.conftest import NodeFactory, node_url
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ENCODERS = {
    "av1": ["-c:v", "libsvtav1", "-preset", "12", "-g", "25", "-svtav1-params", "pred-struct=1", "-an"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "25", "-an"],
}


def _candidates() -> list[str]:
    found = [exe for exe in [shutil.which("ffmpeg")] if exe]
    try:
        import imageio_ffmpeg

        found.append(str(imageio_ffmpeg.get_ffmpeg_exe()))
    except Exception:
        pass
    return found


def _major(exe: str) -> int:
    words = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20).stdout.split()
    major = words[2].lstrip("n").split(".")[0] if len(words) > 2 else ""
    return int(major) if major.isdigit() else 0


def enhanced_ffmpeg(codec: str) -> str | None:
    """An ffmpeg that encodes `codec` and muxes it into Enhanced FLV. FFmpeg 7 does; older ones refuse
    (and Debian 12's 5.1 with SVT-AV1 then hangs instead of exiting), so they are not even tried."""
    for exe in _candidates():
        if _major(exe) < 7:
            continue
        try:
            probe = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                                    "testsrc2=size=64x64:rate=25", "-frames:v", "1", *ENCODERS[codec], "-f", "flv",
                                    "-"], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if probe.returncode == 0 and probe.stdout:
            return exe
    return None


async def first_video_tag(url: str) -> flv.VideoPacket:
    reader = flv.TagReader(max_tag_size=16 << 20)
    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url) as resp:
        async for chunk in resp.aiter_raw():
            for tag in reader.feed(chunk):
                if tag.tag_type == VIDEO:
                    return flv.parse_video(tag.payload)
    raise AssertionError("no video tag over HTTP-FLV")


@pytest.mark.parametrize("codec", ["av1", "vp9"])
async def test_av1_and_vp9_over_enhanced_rtmp(node_factory: NodeFactory, codec: str) -> None:
    exe = await asyncio.to_thread(enhanced_ffmpeg, codec)
    if exe is None:
        pytest.skip(f"no ffmpeg here encodes {codec} into Enhanced FLV")
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    pub = await publish_rtmp(exe, rtmp_url(node, codec), 14, ENCODERS[codec])
    try:
        stream = await wait_live(node, codec, timeout=30)
        (track,) = stream.tracks
        assert (track.codec, track.width, track.height) == (codec, 320, 240)
        parse = flv.parse_av1_config if codec == "av1" else flv.parse_vp9_config
        assert parse(track.config).bit_depth == 8
        # A late viewer gets the sequence start first: the publisher's record, unchanged.
        header = await first_video_tag(node_url(node, f"/live/{codec}.flv"))
        assert (header.codec, header.sequence_header, header.data) == (codec, True, track.config)
        results = await asyncio.gather(decode(exe, rtmp_url(node, codec), 5),
                                       decode(exe, node_url(node, f"/live/{codec}.flv"), 5))
        for rc, frames, err in results:
            assert rc == 0 and not err, err
            assert frames >= 100  # 5 s at 25 fps, less the edges
    finally:
        rc, err = await finish(pub, 40)
    assert rc == 0, err
