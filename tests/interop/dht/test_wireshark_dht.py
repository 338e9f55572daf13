"""Wireshark's BT-DHT dissector judges our KRPC bytes: a loopback capture of ping, find_node,
get_peers and announce_peer between our nodes has no malformed packets."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from hivecast.dht.server import DhtServer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


async def test_tshark_finds_no_malformed_krpc(tmp_path: Path) -> None:
    if not shutil.which("tshark") or not shutil.which("dumpcap"):
        pytest.skip("tshark/dumpcap not installed (scripts/provision.sh installs tshark)")
    hub = DhtServer()
    await hub.start()
    pcap = tmp_path / "dht.pcapng"
    cap = await asyncio.create_subprocess_exec(
        "dumpcap", "-q", "-i", "lo", "-f", f"udp port {hub.port}", "-w", str(pcap),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    others: list[DhtServer] = []
    try:
        for _ in range(30):  # dumpcap needs a moment before it captures
            await asyncio.sleep(0.1)
            if pcap.exists():
                break
        await asyncio.sleep(0.5)
        if cap.returncode is not None:
            pytest.skip("cannot capture on the loopback interface here")
        for _ in range(2):
            node = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
            await node.start()
            await node.wait_bootstrapped(timeout=5)
            others.append(node)
        info_hash = hashlib.sha1(b"wireshark").digest()
        await others[0].ping(("127.0.0.1", hub.port))
        await others[0].get_peers(info_hash, announce_port=1234)
        lookup = await others[1].get_peers(info_hash)
        assert ("127.0.0.1", 1234) in lookup.peers
        await asyncio.sleep(0.5)
    finally:
        if cap.returncode is None:
            cap.terminate()
        async with asyncio.timeout(10):
            await cap.wait()
        for node in others:
            await node.stop()
        await hub.stop()
    decode_as = f"udp.port=={hub.port},bt-dht"

    def tshark(*args: str) -> str:
        return subprocess.run(["tshark", "-r", str(pcap), "-d", decode_as, *args], capture_output=True,
                              text=True, timeout=30).stdout

    listing = await asyncio.to_thread(tshark)
    packets = listing.strip().splitlines()
    assert len(packets) >= 8 and all("BT-DHT" in p for p in packets)
    assert (await asyncio.to_thread(tshark, "-Y", "_ws.malformed")).strip() == ""
    assert "peers" in listing  # the get_peers reply carrying the announced peer was dissected
