"""The ABR client against our own packaged ladder, on a link stepping 8 -> 1 -> 8 Mbit/s.

The throttle is the client's own token bucket on loopback; the player's clock runs `SPEED` times
faster than the wall clock (rates scale with it) to keep the test short.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from hivecast.media.abr.player import play
from hivecast.media.packaging.vod import package_file
from tests.conftest import NodeFactory, node_url

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SPEED = 3.0
LOW_FROM, LOW_UNTIL = 12.0, 28.0


def schedule(t: float) -> float:
    return 1e6 if LOW_FROM <= t < LOW_UNTIL else 8e6


@pytest.fixture(scope="module")
def ladder_source(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("abr")
    src = root / "noisy.mp4"
    # Noise makes the encoder spend its bitrate, so the rungs really are 3 Mbit/s, 1.2 and 0.3.
    subprocess.run(
        [ffmpeg_exe, "-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=60:size=320x180:rate=15",
         "-f", "lavfi", "-i", "sine=duration=60:sample_rate=48000", "-vf", "noise=alls=30:allf=t",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-b:v", "3M", "-maxrate", "3M", "-minrate", "3M",
         "-bufsize", "1M", "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
         str(src)], check=True, timeout=180)
    out = root / "vod"
    package_file(src, out, ladder="144p@1200k,90p@300k", segment_seconds=2.0)
    return out


async def test_switches_down_and_back_up(node_factory: NodeFactory, ladder_source: Path) -> None:
    node = await node_factory()
    target = node.settings.media_dir / "vod" / "abr"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(ladder_source, target)
    # HLS and DASH play at the same time, each through its own throttled link.
    manifests = ("index.m3u8", "manifest.mpd")
    async with asyncio.timeout(180):
        reports = await asyncio.gather(*(play(node_url(node, f"/vod/abr/{m}"), rate=schedule, speed=SPEED,
                                              buffer_target=8.0) for m in manifests))
    for manifest, report in zip(manifests, reports, strict=True):
        assert report.played >= 59.0
        levels = sorted({s.variant for s in report.segments})
        assert len(levels) >= 2, report.summary()
        # Down: within the low phase the player reaches the lowest rung...
        low = [s for s in report.segments if LOW_FROM + 4 <= s.requested < LOW_UNTIL]
        assert low and min(s.variant for s in low) == 0, (manifest, report.segments)
        # ...without a stall longer than 2 s...
        assert report.longest_stall <= 2.0, (manifest, report.summary())
        # ...and back up (above the lowest) within 20 s of the link recovering.
        ups = [s for s in report.segments if LOW_UNTIL <= s.requested <= LOW_UNTIL + 20 and s.variant > 0]
        assert ups, (manifest, report.switch_log, [(s.requested, s.variant) for s in report.segments])
        assert report.switches >= 2
