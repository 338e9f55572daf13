"""Test media made once per session with the real ffmpeg (tiny sizes to respect the test budget)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

MakeMedia = Callable[..., Path]


@pytest.fixture(scope="session")
def make_media(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> MakeMedia:
    root = tmp_path_factory.mktemp("media")
    made: dict[tuple[object, ...], Path] = {}

    def make(name: str, *, seconds: float = 4.0, size: str = "320x180", rate: int = 30, gop: int = 60,
             vcodec: str = "libx264", audio: bool = True, video: bool = True) -> Path:
        key = (name, seconds, size, rate, gop, vcodec, audio, video)
        if key in made:
            return made[key]
        out = root / name
        cmd = [ffmpeg_exe, "-v", "error", "-y"]
        if video:
            cmd += ["-f", "lavfi", "-i", f"testsrc2=duration={seconds}:size={size}:rate={rate}"]
        if audio:
            cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        if video:
            cmd += ["-c:v", vcodec, "-g", str(gop)]
            if vcodec == "libx264":
                cmd += ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]
            elif vcodec == "libx265":
                cmd += ["-preset", "ultrafast", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"]
        if audio:
            cmd += ["-c:a", "aac", "-b:a", "64k"]
        cmd.append(str(out))
        subprocess.run(cmd, check=True, timeout=120)
        made[key] = out
        return out

    return make
