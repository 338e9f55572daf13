"""BEP 44 mutable items over UDP on loopback among our own nodes: a writer updates a signed item,
readers anywhere in the network see the newest version, a stale compare-and-swap is refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivecast.dht.items import mutable_target, public_key_of
from hivecast.dht.server import DhtServer

pytestmark = pytest.mark.timeout(90)

SEED = hashlib.sha256(b"writer").digest()


@pytest.fixture
async def network() -> AsyncIterator[list[DhtServer]]:
    hub = DhtServer()
    await hub.start()
    nodes = [hub]
    for _ in range(7):
        node = DhtServer(bootstrap=[("127.0.0.1", hub.port)])
        await node.start()
        nodes.append(node)
    for node in nodes[1:]:
        await node.find_node(node.node.id, timeout=5)
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


async def test_signed_item_updates_reach_readers_and_stale_cas_is_refused(network: list[DhtServer]) -> None:
    writer, reader = network[1], network[-1]
    key = public_key_of(SEED)
    first = await writer.put_mutable(SEED, {b"playlist": b"/live/a/index.m3u8"}, salt=b"channel-a")
    assert first.seq == 1
    got = await reader.get_mutable(key, salt=b"channel-a", timeout=5)
    assert got is not None and got.v == first.v and got.valid()
    target = mutable_target(key, b"channel-a")
    async with asyncio.timeout(10):  # stored at the nodes closest to the target, not only one
        while sum(n.node.items.get(target, n._now()) is not None for n in network) < 3:
            await asyncio.sleep(0.02)

    second = await writer.put_mutable(SEED, {b"playlist": b"/live/b/index.m3u8"}, salt=b"channel-a", cas=1)
    assert second.seq == 2
    got = await reader.get_mutable(key, salt=b"channel-a", timeout=5)
    assert got is not None and got.seq == 2 and got.v == second.v

    # A writer that read seq 1 and did not see the update: its compare-and-swap fails everywhere.
    refused_before = sum(n.node.stats.bad_items for n in network)
    await writer.put_mutable(SEED, {b"playlist": b"/live/stale"}, salt=b"channel-a", seq=3, cas=1)
    async with asyncio.timeout(10):  # the puts go out as the lookup ends: wait for their answers
        while sum(n.node.stats.bad_items for n in network) <= refused_before:
            await asyncio.sleep(0.02)
    got = await reader.get_mutable(key, salt=b"channel-a", timeout=5)
    assert got is not None and got.seq == 2 and got.v == second.v

    # Another salt under the same key is a separate item; an unknown one is simply not found.
    assert await reader.get_mutable(key, salt=b"channel-b", timeout=3) is None


async def test_cli_put_and_get(network: list[DhtServer], tmp_path: Path) -> None:
    from tests.e2e.dht.test_dht_node import run_cli

    boot = f"127.0.0.1:{network[0].port}"
    key_file = tmp_path / "keys" / "channel.key"
    code, out, err = await run_cli("put", "--bootstrap", boot, "--key-file", str(key_file), "--salt", "ch",
                                   "--json", "--timeout", "10", "first")
    assert code == 0, err
    first = json.loads(out)
    assert first["seq"] == 1 and key_file.stat().st_mode & 0o077 == 0
    code, out, err = await run_cli("put", "--bootstrap", boot, "--key-file", str(key_file), "--salt", "ch",
                                   "--json", "--timeout", "10", "second")
    assert code == 0, err
    assert json.loads(out)["seq"] == 2 and json.loads(out)["key"] == first["key"]
    code, out, err = await run_cli("get", "--bootstrap", boot, "--key", first["key"], "--salt", "ch", "--json",
                                   "--timeout", "10")
    assert code == 0, err
    assert json.loads(out) == {"target": first["target"], "seq": 2, "value": "second"}
    code, out, err = await run_cli("put", "--bootstrap", boot, "--json", "--timeout", "10", "plain")
    assert code == 0, err
    target = json.loads(out)["target"]
    code, out, err = await run_cli("get", "--bootstrap", boot, target, "--json", "--timeout", "10")
    assert code == 0 and json.loads(out)["value"] == "plain", err
    code, _, err = await run_cli("get", "--bootstrap", boot, "--key", "00" * 32, "--timeout", "3")
    assert code == 1 and "no item" in err
