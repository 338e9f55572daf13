"""The ring upstream against real HTTP on loopback: the owner edge's answer is used, and when the
owner is down, slow or failing the fill goes to the origin within the ring's deadline. (The Chord
lookup is replaced by a fixed answer here; tests/e2e/chord/test_edge_ring.py runs the real ring.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hivecast.cdn.ring import RingUpstream
from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool
from hivecast.chord.placement import RING_HEADER
from tests.conftest import free_port
from tests.e2e.cdn_support import ScriptedOrigin, running_origin

ME = "http://127.0.0.1:9"  # our own URL: never contacted


class FixedOwner:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self.asked: list[str] = []

    async def owner_of(self, key: str, *, timeout: float = 5.0) -> str | None:
        self.asked.append(key)
        return self.url


@pytest.fixture
async def origin() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o


@pytest.fixture
async def owner() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o


async def fill(origin: ScriptedOrigin, owner_url: str | None, headers: list[tuple[str, str]] | None = None,
               *, peer_timeout: float = 2.0) -> tuple[int, dict[str, str], bytes, FixedOwner]:
    pool = UpstreamPool(origin.url, UpstreamLimits(read_timeout=5.0))
    ring = RingUpstream(pool, limits=UpstreamLimits(read_timeout=5.0), peer_timeout=peer_timeout, lookup_timeout=1.0)
    owners = FixedOwner(owner_url)
    ring.attach(owners, ME)
    try:
        resp = await ring.request("GET", "/k.ts", headers or [("via", "1.1 hivecast")])
        body = await resp.read_all()
        return resp.status, dict(resp.headers), body, owners
    finally:
        await ring.close()
        await pool.close()


async def test_the_owner_answers_and_the_origin_is_not_asked(origin: ScriptedOrigin, owner: ScriptedOrigin) -> None:
    owner.set("/k.ts", body=b"from owner", headers=[("x-ring-source", "origin")])
    origin.set("/k.ts", body=b"from origin")
    status, headers, body, _ = await fill(origin, owner.url)
    assert (status, body) == (200, b"from owner")
    assert headers["x-ring-source"] == "peer" and headers["x-ring-owner"] == owner.url
    assert owner.seen[0].headers[RING_HEADER] == ME and origin.count("/k.ts") == 0


async def test_a_fill_asked_by_a_peer_goes_to_the_origin_without_a_lookup(origin: ScriptedOrigin) -> None:
    origin.set("/k.ts", body=b"from origin")
    status, headers, body, owners = await fill(origin, "http://127.0.0.1:1", [(RING_HEADER, "http://peer")])
    assert (status, body, headers["x-ring-source"]) == (200, b"from origin", "origin")
    assert owners.asked == [] and RING_HEADER not in origin.seen[0].headers


@pytest.mark.parametrize("failure", ["down", "slow", "error"])
async def test_owner_failure_falls_back_to_the_origin(origin: ScriptedOrigin, owner: ScriptedOrigin,
                                                      failure: str) -> None:
    origin.set("/k.ts", body=b"from origin")
    if failure == "slow":
        owner.set("/k.ts", body=b"late", delay=3.0)
    else:
        owner.set("/k.ts", status=502, body=b"bad gateway")
    url = f"http://127.0.0.1:{free_port()}" if failure == "down" else owner.url
    status, headers, body, _ = await fill(origin, url, peer_timeout=0.3)
    assert (status, body) == (200, b"from origin")
    assert headers["x-ring-source"] == "origin-fallback" and headers["x-ring-owner"] == url
    assert origin.count("/k.ts") == 1


async def test_no_owner_known_means_the_origin(origin: ScriptedOrigin) -> None:
    origin.set("/k.ts", body=b"from origin")
    status, headers, body, owners = await fill(origin, None)
    assert (status, body) == (200, b"from origin") and owners.asked == ["/k.ts"]
    assert "x-ring-owner" not in headers
