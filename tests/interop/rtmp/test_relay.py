"""Push relays to ffmpeg (-listen 1) and nginx-rtmp; pull from nginx-rtmp into our registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hivecast.rtmp.relay import PullSource, PushRelay
from tests.conftest import NodeFactory, free_port
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, start_ffmpeg, wait_live
from tests.interop.rtmp.nginx import nginx_rtmp

pytestmark = [pytest.mark.interop]


async def test_push_to_ffmpeg_listener(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "src"), 9)
    port = free_port()
    listener = await start_ffmpeg(ffmpeg_exe, "-loglevel", "error", "-stats", "-listen", "1", "-i",
                                  f"rtmp://127.0.0.1:{port}/live/x", "-t", "4", "-map", "0", "-f", "null", "-")
    relays = node.services["rtmp_relays"]
    target = f"rtmp://127.0.0.1:{port}/live/x"
    try:
        await wait_live(node, "src")
        assert relays.add_push("src", target) and not relays.add_push("src", target)
        rc, err = await finish(listener, 40)
        lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and "frame=" not in ln]
        assert rc == 0 and not lines, err
        (status,) = relays.list("src")
        assert "frame=" in err and status["bytes"] > 0 and status["url"] == target
    finally:
        assert await relays.remove_push("src", target)
        await finish(pub, 30)


async def test_push_to_nginx_and_pull_back(node_factory: NodeFactory, ffmpeg_exe: str, tmp_path: Path) -> None:
    async with nginx_rtmp(tmp_path / "nginx") as nport:
        node = await node_factory(open_publish=True, rtmp={"port": 0})
        registry = node.services["live_registry"]
        pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "src"), 16)
        push = PushRelay(registry, "src", f"rtmp://127.0.0.1:{nport}/live/relayed", retry_min=0.3)
        pull = PullSource(registry, "back", f"rtmp://127.0.0.1:{nport}/live/relayed", retry_min=0.3)
        try:
            await wait_live(node, "src")
            push.start()
            await asyncio.sleep(1.0)
            pull.start()
            # ffmpeg reads what we pushed from nginx ...
            rc, frames, err = await decode(ffmpeg_exe, f"rtmp://127.0.0.1:{nport}/live/relayed", 4)
            assert rc == 0 and not err, err
            assert frames >= 90
            # ... and what we pulled back from nginx plays from us.
            await wait_live(node, "back")
            rc, frames, err = await decode(ffmpeg_exe, rtmp_url(node, "back"), 3)
            assert rc == 0 and not err, err
            assert frames >= 60
            assert push.status()["state"] == "running" and pull.status()["state"] == "running"
        finally:
            await pull.stop()
            await push.stop()
            await finish(pub, 30)
