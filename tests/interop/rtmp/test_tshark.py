"""Wireshark's RTMP dissector judges our bytes: no malformed packets in a publish and play session."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from hivecast.rtmp.client import RtmpClient
from hivecast.rtmp.session import MediaReceived
from tests.conftest import NodeFactory
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop]


def _tshark_lines(args: list[str]) -> list[str]:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120)
    return [ln for ln in out.stdout.splitlines() if ln.strip()]


async def test_capture_has_no_malformed_rtmp(node_factory: NodeFactory, ffmpeg_exe: str, tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (scripts/provision.sh installs it)")
    node = await node_factory(open_publish=True, rtmp={"port": 0})
    port = node.services["rtmp_port"]
    pcap = tmp_path / "rtmp.pcap"
    cap = await asyncio.create_subprocess_exec("tshark", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert cap.stderr is not None
        async with asyncio.timeout(20):
            while b"Capturing on" not in (line := await cap.stderr.readline()):
                if not line:
                    pytest.skip("tshark cannot capture on the loopback interface here")
    except TimeoutError:
        cap.kill()
        pytest.skip("tshark did not start capturing")
    try:
        pub = await publish_rtmp(ffmpeg_exe, rtmp_url(node, "cap"), 5)
        await wait_live(node, "cap")
        rc, _frames, err = await decode(ffmpeg_exe, rtmp_url(node, "cap"), 2)
        assert rc == 0 and not err, err
        # Our own client's bytes (digest handshake, commands, acks) go through the dissector too.
        client = await RtmpClient.open(rtmp_url(node, "cap"))
        await client.play()
        media = 0
        while media < 50:
            media += sum(1 for ev in await client.events(timeout=10) if isinstance(ev, MediaReceived))
        await client.close()
        await finish(pub, 30)
        await asyncio.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            cap.send_signal(signal.SIGINT)
        await finish(cap, 15)
    decode_as = ["-d", f"tcp.port=={port},rtmpt"]
    rtmp_packets = await asyncio.to_thread(_tshark_lines, ["-r", str(pcap), *decode_as, "-Y", "rtmpt"])
    malformed = await asyncio.to_thread(_tshark_lines, ["-r", str(pcap), *decode_as, "-Y", "_ws.malformed"])
    assert len(rtmp_packets) > 50
    assert not malformed, "\n".join(malformed[:20])
