"""`hivecast package` and `hivecast play` as a user runs them: real processes, a real served node."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NodeFactory, node_url
from tests.e2e.test_cli_serve import env

pytestmark = [pytest.mark.interop]

HIVECAST = [sys.executable, "-m", "hivecast"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIVECAST, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=120)


def make_source(ffmpeg_exe: str, src: Path) -> None:
    subprocess.run([ffmpeg_exe, "-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=4:size=320x180:rate=30",
                    "-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
                    "-c:a", "aac", str(src)], check=True, timeout=60)


async def test_package_then_play(node_factory: NodeFactory, ffmpeg_exe: str, tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    await asyncio.to_thread(make_source, ffmpeg_exe, src)
    node = await node_factory()
    out = node.settings.media_dir / "vod" / "cli"
    done = run(["package", str(src), "-o", str(out), "--ladder", "90p", "--segment-seconds", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "v0: video 320x180" in done.stdout and "v1: video 160x90" in done.stdout
    assert "packaged 4.00 s" in done.stdout

    again = run(["package", str(src), "-o", str(out)], tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    failed = run(["package", str(bad), "-o", str(tmp_path / "bad")], tmp_path)
    assert failed.returncode == 1 and "not a media file" in failed.stderr
    assert not (tmp_path / "bad").exists()

    played = await asyncio.to_thread(run, ["play", node_url(node, "/vod/cli/manifest.mpd"), "--json", "--rate", "4M"],
                                     tmp_path)
    assert played.returncode == 0, played.stderr
    report = json.loads(played.stdout)
    assert report["played"] == pytest.approx(4.0, abs=0.1) and report["rebuffers"] == 0
    text = await asyncio.to_thread(run, ["play", node_url(node, "/vod/cli/index.m3u8")], tmp_path)
    assert text.returncode == 0 and "startup" in text.stdout and "switches" in text.stdout
    missing = await asyncio.to_thread(run, ["play", node_url(node, "/vod/nope/index.m3u8")], tmp_path)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
