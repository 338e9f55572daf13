"""Three product edges (`hivecast edge` processes) on one Chord ring, in front of an origin that
counts requests, all on loopback: each key is fetched from the origin once and the other edges get
it from the key's owner edge; when an edge leaves (stopped, or killed) the ring heals around it and
every answer is still the right object."""

from __future__ import annotations

import asyncio
import bisect
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivecast.chord.ring import key_id
from tests.conftest import free_port
from tests.e2e.cdn_support import ScriptedOrigin, running_origin

pytestmark = pytest.mark.timeout(120)


@dataclass
class EdgeProc:
    url: str
    ring_port: int
    proc: asyncio.subprocess.Process


def body_for(key: str) -> bytes:
    return (f"object {key}\n" * 700).encode()


@pytest.fixture
async def origin() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o


def publish(origin: ScriptedOrigin, keys: list[str]) -> None:
    for key in keys:
        origin.set(key, headers=[("cache-control", "max-age=600"), ("content-type", "video/mp2t")],
                   body=body_for(key), delay=0.05)


async def start_edges(origin: ScriptedOrigin, tmp_path: Path, n: int, seeds: list[int] | None = None,
                      first: int = 0, http_port: int | None = None) -> list[EdgeProc]:
    """`n` edges whose seeds are each other's ring ports (or the given ones): no directory."""
    ports = [(http_port or free_port(), free_port()) for _ in range(n)]
    seed_ports = seeds if seeds is not None else [ring for _, ring in ports]
    seed_args = [arg for port in seed_ports for arg in ("--ring-seed", f"127.0.0.1:{port}")]
    # Generous ring deadlines: a loaded machine must not turn a peer fill into an origin fallback,
    # which this test would count as a second origin fetch (the fallbacks have their own tests).
    env = {**os.environ, "HIVECAST_LOG_LEVEL": "warning", "HIVECAST_CDN__HEARTBEAT_INTERVAL": "600",
           "HIVECAST_CDN__RING_TIMEOUT": "15", "HIVECAST_CDN__RING_LOOKUP_TIMEOUT": "10"}
    edges = []
    for i, (http, ring) in enumerate(ports, start=first):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hivecast", "edge", "--origin", origin.url, "--host", "127.0.0.1",
            "--http-port", str(http), "--data-dir", str(tmp_path / f"edge{i}"), "--cache-size", "20M",
            "--ring-port", str(ring), *seed_args, env=env)
        edges.append(EdgeProc(f"http://127.0.0.1:{http}", ring, proc))
    return edges


async def stop_all(edges: list[EdgeProc]) -> None:
    for edge in edges:
        if edge.proc.returncode is None:
            edge.proc.send_signal(signal.SIGTERM)
    for edge in edges:
        try:
            async with asyncio.timeout(10):
                await edge.proc.wait()
        except TimeoutError:
            edge.proc.kill()
            await edge.proc.wait()


def ideal_owner(key: str, urls: list[str]) -> str:
    """The owner Chord's definition names: the first member clockwise from the key's id."""
    ring = sorted((key_id(u), u) for u in urls)
    i = bisect.bisect_left([rid for rid, _ in ring], key_id(key))
    return ring[i % len(ring)][1]


def pick_keys(prefix: str, wanted: dict[str, int], urls: list[str]) -> list[str]:
    """Key names until each edge in `wanted` owns its number of them."""
    left = dict(wanted)
    keys = []
    i = 0
    while any(left.values()):
        key = f"/vod/ring/{prefix}{i}.ts"
        owner = ideal_owner(key, urls)
        if left.get(owner, 0) > 0:
            left[owner] -= 1
            keys.append(key)
        i += 1
    return keys


async def ring_view(c: httpx.AsyncClient, edge: EdgeProc, key: str | None = None) -> dict[str, Any] | None:
    try:
        r = await c.get(f"{edge.url}/cdn/v1/ring", params={"key": key} if key else None)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


async def converged(c: httpx.AsyncClient, edges: list[EdgeProc], keys: list[str]) -> bool:
    """Every live edge's successor and predecessor are the ideal ones, and every edge names the
    ideal owner for every key."""
    urls = sorted((e.url for e in edges), key=key_id)
    for i, edge in enumerate(urls):
        view = await ring_view(c, next(e for e in edges if e.url == edge))
        if view is None:
            return False
        node = view["node"]
        if node["successors"][0] != urls[(i + 1) % len(urls)] or node["predecessor"] != urls[i - 1]:
            return False
    for key in keys:
        for edge in edges:
            view = await ring_view(c, edge, key)
            if view is None or view["owner"] != ideal_owner(key, urls):
                return False
    return True


async def wait_converged(c: httpx.AsyncClient, edges: list[EdgeProc], keys: list[str], within: float = 40) -> None:
    async with asyncio.timeout(within):
        while not await converged(c, edges, keys):
            await asyncio.sleep(0.2)


async def get(c: httpx.AsyncClient, edge: EdgeProc, key: str) -> httpx.Response:
    r = await c.get(edge.url + key)
    assert r.status_code == 200, (edge.url, key, r.status_code, r.text[:200])
    assert r.content == body_for(key), f"{edge.url} served the wrong bytes for {key}"
    return r


@pytest.mark.parametrize("leave", ["stopped", "killed"])
async def test_three_edges_fetch_once_serve_from_owner_and_heal_after_a_leave(
        origin: ScriptedOrigin, tmp_path: Path, leave: str) -> None:
    edges = await start_edges(origin, tmp_path, 3)
    try:
        async with httpx.AsyncClient(timeout=15) as c:
            urls = [e.url for e in edges]
            # Ids come from the edges' (random) ports: pick keys so that every edge owns three.
            keys = pick_keys("seq", {u: 3 for u in urls}, urls)
            together = [f"/vod/ring/burst{i}.ts" for i in range(6)]
            publish(origin, keys + together)
            await wait_converged(c, edges, keys)
            owners = {k: ideal_owner(k, urls) for k in keys}

            # One key after another, non-owners first: the first asks the owner, which fetches it.
            for key in keys:
                order = sorted(edges, key=lambda e: e.url == owners[key])
                for edge in order:
                    r = await get(c, edge, key)
                    if edge.url == owners[key]:
                        assert r.headers["x-cache"] == "HIT" and r.headers["x-ring-source"] == "origin"
                    else:
                        assert r.headers["x-cache"] == "MISS" and r.headers["x-ring-source"] == "peer"
                    assert r.headers["x-ring-owner"] == owners[key]
                assert origin.count(key) == 1, key

            # All three edges at once: the owner's one fetch serves its own client and both peers.
            await asyncio.gather(*(get(c, e, k) for k in together for e in edges))
            for key in together:
                assert origin.count(key) == 1, key

            fills = {e.url: (await ring_view(c, e))["fills"] for e in edges}  # type: ignore[index]
            assert sum(f["peer_fetches"] for f in fills.values()) == 2 * len(keys + together)
            assert sum(f["asked_by_peers"] + f["owned"] for f in fills.values()) == len(keys + together)
            assert all(f["peer_failures"] == 0 for f in fills.values())

            # The owner of the most keys leaves.
            victim = max(edges, key=lambda e: sum(o == e.url for o in owners.values()))
            if leave == "killed":
                victim.proc.kill()
            else:
                victim.proc.send_signal(signal.SIGTERM)
            await victim.proc.wait()
            survivors = [e for e in edges if e is not victim]
            # New keys: four on the arc the victim owned, three on each survivor's own arc.
            later = pick_keys("after", {victim.url: 4, **{e.url: 3 for e in survivors}}, urls)
            publish(origin, later)
            orphan = next(k for k in later if ideal_owner(k, urls) == victim.url)
            # Before the ring has healed: still the right object, from the origin if need be.
            r = await get(c, survivors[0], orphan)
            assert r.headers["x-ring-source"] in ("origin", "origin-fallback", "peer")

            await wait_converged(c, survivors, keys + later)
            remaining = [e.url for e in survivors]
            for key in keys + together:  # the survivors hold their copies: no new origin fetch
                for edge in survivors:
                    await get(c, edge, key)
                assert origin.count(key) == 1, key
            for key in later:
                owner = ideal_owner(key, remaining)
                for edge in sorted(survivors, key=lambda e: e.url == owner):
                    r = await get(c, edge, key)
                    if key != orphan:
                        assert r.headers["x-ring-owner"] == owner
                limit = 2 if key == orphan else 1  # the orphan may have been fetched before the ring healed
                assert 1 <= origin.count(key) <= limit, key
            assert all(e.proc.returncode is None for e in survivors)
    finally:
        await stop_all(edges)


async def test_an_edge_joins_later_through_one_seed_and_takes_over_its_arc(
        origin: ScriptedOrigin, tmp_path: Path) -> None:
    edges = await start_edges(origin, tmp_path, 2)
    try:
        async with httpx.AsyncClient(timeout=15) as c:
            urls = [e.url for e in edges]
            # The newcomer's port (so its id) is chosen now: some early keys will move to it.
            newcomer_port = free_port()
            after = [*urls, f"http://127.0.0.1:{newcomer_port}"]
            keys = pick_keys("early", {u: 3 for u in after}, after)
            publish(origin, keys)
            await wait_converged(c, edges, keys)
            for key in keys:
                for edge in edges:
                    await get(c, edge, key)
                assert origin.count(key) == 1

            # A third edge knows only the first edge's ring port.
            edges += await start_edges(origin, tmp_path, 1, seeds=[edges[0].ring_port], first=2,
                                       http_port=newcomer_port)
            newcomer = edges[2]
            urls = [e.url for e in edges]
            assert urls == after
            later = pick_keys("late", {u: 3 for u in urls}, urls)
            publish(origin, later)
            await wait_converged(c, edges, keys + later)
            taken = [k for k in keys if ideal_owner(k, urls) == newcomer.url]
            assert len(taken) == 3
            for key in keys:  # the old edges still hold their copies; the newcomer asks the new owner
                for edge in edges:
                    await get(c, edge, key)
                # Cached objects are not handed over: a key that moved is fetched once more, by its new owner.
                assert origin.count(key) == (2 if key in taken else 1), key
            for key in later:
                owner = ideal_owner(key, urls)
                for edge in sorted(edges, key=lambda e: e.url == owner):
                    r = await get(c, edge, key)
                    assert r.headers["x-ring-owner"] == owner
                assert origin.count(key) == 1, key
    finally:
        await stop_all(edges)
