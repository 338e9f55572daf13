"""`hivecast serve --rtmp-port` and `hivecast rtmp pull` as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp

pytestmark = [pytest.mark.interop]

HIVECAST = [sys.executable, "-m", "hivecast"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}


async def _until_listening(port: int, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.2)


async def test_serve_rtmp_port_and_cli_pull(tmp_path: Path, ffmpeg_exe: str) -> None:
    http, rtsp, rtmp = free_port(), free_port(), free_port()
    node = await asyncio.create_subprocess_exec(
        *HIVECAST, "serve", "--host", "127.0.0.1", "--http-port", str(http), "--rtsp-port", str(rtsp),
        "--rtmp-port", str(rtmp), "--open-publish", "--data-dir", str(tmp_path / "data"),
        env=_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    pull = None
    try:
        await _until_listening(rtmp)
        pub = await publish_rtmp(ffmpeg_exe, f"rtmp://127.0.0.1:{rtmp}/live/src", 14)
        await asyncio.sleep(1.5)
        pull = await asyncio.create_subprocess_exec(
            *HIVECAST, "rtmp", "pull", f"rtmp://127.0.0.1:{rtmp}/live/src", "--as", "copy",
            "--server", f"rtmp://127.0.0.1:{rtmp}/live", "--seconds", "10", env=_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(3.0)
        rc, frames, err = await decode(ffmpeg_exe, f"rtmp://127.0.0.1:{rtmp}/live/copy", 3)
        assert rc == 0 and not err, err
        assert frames >= 60
        await finish(pull, 30)
        await finish(pub, 30)
    finally:
        if pull is not None and pull.returncode is None:
            pull.kill()
            await pull.wait()
        node.send_signal(signal.SIGINT)
        rc_node, err_node = await finish(node, 20)
    assert rc_node == 0, err_node
