"""Shared helpers for RTMP interop tests: ffmpeg publishers and readers with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from hivecast.media import LiveRegistry
from hivecast.node import Node

CLIP = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k"]


async def start_ffmpeg(exe: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(exe, "-hide_banner", "-nostdin", *args,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def publish_rtmp(exe: str, url: str, seconds: float, codec: list[str] | None = None) -> asyncio.subprocess.Process:
    return await start_ffmpeg(exe, "-loglevel", "error", "-re", *CLIP, "-t", str(seconds), *(codec or H264),
                              "-f", "flv", url)


async def finish(proc: asyncio.subprocess.Process, timeout: float) -> tuple[int, str]:
    try:
        async with asyncio.timeout(timeout):
            _, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _, err = await proc.communicate()
        return -9, err.decode(errors="replace")
    return proc.returncode or 0, err.decode(errors="replace")


async def decode(exe: str, url: str, seconds: float, *pre: str, timeout: float = 40.0) -> tuple[int, int, str]:
    """(return code, frames decoded, error lines) of ffmpeg decoding `seconds` of `url`."""
    proc = await start_ffmpeg(exe, "-loglevel", "error", "-stats", *pre, "-i", url, "-t", str(seconds),
                              "-map", "0", "-f", "null", "-")
    rc, err = await finish(proc, timeout)
    frames = [int(m) for m in re.findall(r"frame=\s*(\d+)", err)]
    errors = "\n".join(line for line in err.replace("\r", "\n").splitlines()
                       if line.strip() and not line.lstrip().startswith(("frame=", "size=")))
    return rc, (frames[-1] if frames else 0), errors


async def wait_live(node: Node, name: str, timeout: float = 15.0, units: int = 30) -> Any:
    registry: LiveRegistry = node.services["live_registry"]
    async with asyncio.timeout(timeout):
        while True:
            stream = registry.get(name)
            if stream is not None and stream.units >= units:
                return stream
            await asyncio.sleep(0.1)


def rtmp_url(node: Node, name: str) -> str:
    return f"rtmp://127.0.0.1:{node.services['rtmp_port']}/live/{name}"
