"""The edge's upstream on a Chord ring: a cache fill first asks the key's owner edge (found with a
Chord lookup), which answers from its cache or fetches from the origin itself; if the ring has no
answer, or the owner fails or is slow to answer, the fill goes to the origin directly.

This only chooses where a fill goes. The edge cache above it stores what comes back under its
usual RFC 9111 rules and coalesces concurrent misses, so the owner fetches each object once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool, UpstreamResponse
from hivecast.chord.placement import (
    RING_HEADER,
    Route,
    ask_owner,
    mark_response,
    route,
    without_ring_fields,
)
from hivecast.net import NetError, NetTimeout

log = logging.getLogger(__name__)

MAX_PEER_POOLS = 64


class Owners(Protocol):
    async def owner_of(self, key: str, *, timeout: float = 5.0) -> str | None: ...


class Origin(Protocol):
    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> UpstreamResponse: ...


@dataclass(slots=True)
class RingStats:
    lookups: int = 0
    lookup_failures: int = 0  # no owner found in time: the fill went to the origin
    owned: int = 0            # fills for keys this edge owns (to the origin)
    asked_by_peers: int = 0   # fills other edges asked of us as the owner (to the origin)
    peer_fetches: int = 0     # fills answered by the owner edge
    peer_failures: int = 0    # the owner failed or timed out: the fill went to the origin
    bypassed: int = 0         # not shareable (ranges, credentials, other methods)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


class RingStatsCollector:
    """A prometheus_client collector: ring fills by where they went."""

    def __init__(self, stats: RingStats) -> None:
        self.stats = stats

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("hivecast_cdn_ring_fills", "Edge cache fills on the Chord ring, by outcome",
                                     labels=["outcome"])
        for f in fields(self.stats):
            family.add_metric([f.name], getattr(self.stats, f.name))
        yield family


class RingUpstream:
    """Until `attach` names the ring and our URL (known once the front door listens), fills go to
    the origin."""

    def __init__(self, origin: Origin, *, limits: UpstreamLimits, peer_timeout: float,
                 lookup_timeout: float) -> None:
        self.origin = origin
        self.owners: Owners | None = None
        self.my_url = ""
        self.limits = limits
        self.peer_timeout = peer_timeout
        self.lookup_timeout = lookup_timeout
        self.stats = RingStats()
        self._peers: dict[str, UpstreamPool] = {}

    def attach(self, owners: Owners, my_url: str) -> None:
        self.owners = owners
        self.my_url = my_url

    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> UpstreamResponse:
        if route(method, headers) is Route.ORIGIN:
            if any(k.lower() == RING_HEADER for k, _ in headers):
                self.stats.asked_by_peers += 1
                return await self._from_origin(method, target, headers, body, owner=self.my_url)
            self.stats.bypassed += 1
            return await self.origin.request(method, target, headers, body)
        if self.owners is None:
            self.stats.lookup_failures += 1
            return await self._from_origin(method, target, headers, body, owner=None)
        self.stats.lookups += 1
        owner = await self.owners.owner_of(target, timeout=self.lookup_timeout)
        if owner is None:
            self.stats.lookup_failures += 1
            return await self._from_origin(method, target, headers, body, owner=None)
        if not ask_owner(owner, self.my_url):
            self.stats.owned += 1
            return await self._from_origin(method, target, headers, body, owner=self.my_url)
        try:
            resp = await self._from_peer(owner, target, headers)
        except (NetError, TimeoutError) as exc:
            self.stats.peer_failures += 1
            log.info("ring owner %s failed for %s (%r): asking the origin", owner, target, exc)
            return await self._from_origin(method, target, headers, body, owner=owner, source="origin-fallback")
        if resp.status >= 500:
            # The owner's own upstream failed (its 502/504): we may still reach the origin.
            await resp.close()
            self.stats.peer_failures += 1
            return await self._from_origin(method, target, headers, body, owner=owner, source="origin-fallback")
        self.stats.peer_fetches += 1
        resp.headers = mark_response(resp.headers, owner=owner, source="peer")
        return resp

    async def _from_origin(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, *,
                           owner: str | None, source: str = "origin") -> UpstreamResponse:
        resp = await self.origin.request(method, target, without_ring_fields(headers), body)
        resp.headers = mark_response(resp.headers, owner=owner, source=source)
        return resp

    async def _from_peer(self, owner: str, target: str, headers: list[tuple[str, str]]) -> UpstreamResponse:
        pool = self._peers.get(owner)
        if pool is None:
            if len(self._peers) >= MAX_PEER_POOLS:
                # Members come and go: forget the oldest pool rather than grow without bound.
                oldest = next(iter(self._peers))
                await self._peers.pop(oldest).close()
            try:
                pool = UpstreamPool(owner, UpstreamLimits(
                    connect_timeout=min(self.limits.connect_timeout, self.peer_timeout),
                    read_timeout=self.limits.read_timeout))
            except ValueError as exc:
                raise NetError(f"ring owner {owner!r}: {exc}") from None
            self._peers[owner] = pool
        try:
            # The owner's head must come within peer_timeout; its body gaps then follow read_timeout.
            async with asyncio.timeout(self.peer_timeout):
                return await pool.request("GET", target, [*headers, (RING_HEADER, self.my_url)])
        except TimeoutError:
            raise NetTimeout(f"ring owner {owner} did not answer in {self.peer_timeout}s") from None

    async def close(self) -> None:
        for pool in self._peers.values():
            await pool.close()
        self._peers.clear()


__all__ = ["RingStats", "RingStatsCollector", "RingUpstream"]
