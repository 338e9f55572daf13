"""Joining through seeds, no directory (ChordServer on UDP loopback): a seed that is down at first
is tried again, a dead seed in the list is skipped, and nodes seeding each other find each other."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hivecast.chord.server import ChordServer
from tests.conftest import free_port
from tests.e2e.cdn_support import until

pytestmark = pytest.mark.timeout(60)


def ring_of(servers: list[ChordServer]) -> bool:
    """Every node's successor is the next one by id: one ring of all of them."""
    ordered = sorted(servers, key=lambda s: s.me.id)
    return all(s.node is not None and s.node.successor.id == ordered[(i + 1) % len(ordered)].me.id
               for i, s in enumerate(ordered))


async def test_a_seed_that_comes_up_later_is_joined() -> None:
    port_b = free_port(socket.SOCK_DGRAM)
    a = ChordServer(url="http://a")
    b = ChordServer(port=port_b, url="http://b")
    await a.start(seeds=[("127.0.0.1", port_b)])
    try:
        await until(lambda: a.join_attempts >= 2, within=10)  # tried B twice while it was down: alone meanwhile
        assert a.state()["alone"]
        await b.start(seeds=[("127.0.0.1", a.me.addr[1])])
        await until(lambda: ring_of([a, b]), within=15)
        key = "/vod/x.ts"
        owners = {await a.owner_of(key), await b.owner_of(key)}
        assert len(owners) == 1 and owners <= {"http://a", "http://b"}
    finally:
        await a.stop()
        await b.stop()


async def test_dead_seeds_are_skipped_and_own_address_ignored() -> None:
    first = ChordServer(url="http://first")
    await first.start()
    dead = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
    ports = [free_port(socket.SOCK_DGRAM) for _ in range(3)]
    others = [ChordServer(port=port, url=f"http://n{i}") for i, port in enumerate(ports)]
    try:
        for server, port in zip(others, ports, strict=True):
            # The same seed list everywhere, our own address in it too (a shared config file).
            await server.start(seeds=[dead, ("127.0.0.1", first.me.addr[1]), *(("127.0.0.1", p) for p in ports)])
            assert ("127.0.0.1", port) not in server.seeds and dead in server.seeds
        await until(lambda: ring_of([first, *others]), within=20)
        answers = await asyncio.gather(*(s.owner_of("/k") for s in [first, *others]))
        assert len(set(answers)) == 1
    finally:
        for server in [first, *others]:
            await server.stop()
