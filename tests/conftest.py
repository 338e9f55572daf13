"""Shared fixtures: free ports, in-process nodes on loopback, real peers or a skip that says why."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hivecast.config import load_settings
from hivecast.node import Node
from hivecast.node.roles import build_node


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_and_tcp_port() -> int:
    """A port number free for UDP and TCP at once (a DNS server takes both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on the loop the node runs on: uvloop where installed."""
    try:
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    except ImportError:  # pragma: no cover
        return {"asyncio": asyncio.new_event_loop}


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def node_factory(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start in-process nodes on free loopback ports; all are stopped at the end of the test."""
    nodes: list[Node] = []

    async def make(role: str = "serve", **flags: Any) -> Node:
        base: dict[str, Any] = {
            "role": role,
            "host": "127.0.0.1",
            "http_port": 0,
            "rtsp_port": 0,
            "data_dir": tmp_path / f"node{len(nodes)}",
            # every listener on a free port, so tests never meet each other or a system service
            "rtmp": {"port": 0},
            "p2p": {"bt_port": 0, "tracker_udp_port": 0},
            "dht": {"dht_port": 0},
        }
        for key, value in flags.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        settings = load_settings(flags=base, environ={})
        node = build_node(settings)
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        await node.stop()


def node_url(node: Node, path: str = "") -> str:
    return f"http://127.0.0.1:{node.services['http_port']}{path}"


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """A real ffmpeg: Debian's if installed, else the static build that imageio-ffmpeg ships."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"no ffmpeg available: {exc}")
