"""The DHT as a user meets it: the node component, the routing table across restarts, the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hivecast.dht.ids import random_id
from hivecast.dht.server import DhtServer
from tests.conftest import NodeFactory

pytestmark = pytest.mark.timeout(90)


async def test_serve_node_runs_a_dht_node(node_factory: NodeFactory) -> None:
    node = await node_factory("serve", dht={"dht_port": 0}, p2p={"bt_port": 0, "tracker_udp_port": 0})
    dht = node.services["dht"]
    assert node.services["dht_port"] == dht.port
    probe = DhtServer()
    await probe.start()
    try:
        assert await probe.ping(("127.0.0.1", dht.port), timeout=5) is not None
    finally:
        await probe.stop()
    code, out, err = await run_cli("stats", "--node", f"http://127.0.0.1:{node.services['http_port']}", "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert figures["id"] == dht.node.id.hex() and figures["queries_in"] == {"ping": 1}


async def test_routing_table_survives_restart(tmp_path: Path) -> None:
    hub = DhtServer()
    await hub.start()
    others = [DhtServer(bootstrap=[("127.0.0.1", hub.port)]) for _ in range(5)]
    for o in others:
        await o.start()
        await o.wait_bootstrapped(timeout=10)
    state = tmp_path / "p2p" / "dht.json"
    first = DhtServer(bootstrap=[("127.0.0.1", hub.port)], state_path=state)
    await first.start()
    assert await first.wait_bootstrapped(timeout=10)
    await first.find_node(random_id(__import__("random").Random(1)))
    known = len(first.node.table)
    node_id = first.node.id
    await first.stop()
    assert known >= 5 and json.loads(state.read_text())["id"] == node_id.hex()
    # Restart with no bootstrap nodes at all: the saved contacts bring it back into the network.
    second = DhtServer(state_path=state)
    await second.start()
    try:
        assert second.node.id == node_id
        assert await second.wait_bootstrapped(timeout=10)
        assert len(second.node.table) >= 5
    finally:
        await second.stop()
        for o in [hub, *others]:
            await o.stop()


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hivecast", "dht", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_ping_lookup_stats() -> None:
    hub = DhtServer()
    await hub.start()
    seeder = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
    await seeder.start()
    await seeder.wait_bootstrapped(timeout=10)
    info_hash = bytes(range(20))
    await seeder.get_peers(info_hash, announce_port=51413)
    boot = f"127.0.0.1:{hub.port}"
    try:
        code, out, err = await run_cli("ping", boot, "--bind", "127.0.0.1", "--json", "--timeout", "5")
        assert code == 0, err
        assert json.loads(out)["id"] == hub.node.id.hex()
        code, out, err = await run_cli("lookup", f"magnet:?xt=urn:btih:{info_hash.hex()}", "--bootstrap", boot,
                                       "--bind", "127.0.0.1", "--json", "--timeout", "10")
        assert code == 0, err
        assert "127.0.0.1:51413" in json.loads(out)["peers"]
        code, out, err = await run_cli("stats", "--bootstrap", boot, "--bind", "127.0.0.1", "--json",
                                       "--timeout", "10")
        assert code == 0, err
        assert json.loads(out)["routing_table"]["nodes"] >= 1
        code, _, err = await run_cli("lookup", "nothex", "--bootstrap", boot)
        assert code == 2 and "info-hash" in err
        code, _, err = await run_cli("ping", "127.0.0.1:1", "--bind", "127.0.0.1", "--timeout", "1")
        assert code == 1 and "no answer" in err
    finally:
        await seeder.stop()
        await hub.stop()
