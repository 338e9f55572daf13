"""The origin's view of its edges: registration, heartbeats with load, health checks, draining,
and the purge/prefetch event log the edges long-poll.

`node.services["edge_registry"]` is an `EdgeRegistry` (contract: list_edges(), set_draining()).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool
from hivecast.net.errors import NetError

log = logging.getLogger(__name__)

MAX_EDGES = 10_000
MAX_EVENTS = 10_000


@dataclass(slots=True)
class EdgeRecord:
    id: str
    url: str
    region: str = "default"
    healthy: bool = True
    draining: bool = False
    load: dict[str, float] = field(default_factory=lambda: {"connections": 0, "bandwidth_bps": 0, "cpu": 0.0})
    last_seen: float = 0.0          # wall clock of the last heartbeat
    last_seen_mono: float = 0.0
    latency_ms: float = 0.0
    failures: int = 0

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "region": self.region, "healthy": self.healthy,
                "draining": self.draining, "load": dict(self.load), "last_seen": self.last_seen,
                "latency_ms": round(self.latency_ms, 3)}


class EdgeRegistry:
    def __init__(self, *, health_interval: float = 2.0, heartbeat_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.health_interval = health_interval
        self.heartbeat_interval = heartbeat_interval
        self.clock = clock
        self.wall = wall
        self.edges: dict[str, EdgeRecord] = {}
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self.seq = 0
        self._changed: asyncio.Future[None] | None = None
        self._pools: dict[str, UpstreamPool] = {}

    # ---- contract ----
    def list_edges(self) -> list[dict[str, Any]]:
        return [e.public() for e in self.edges.values()]

    def set_draining(self, edge_id: str, draining: bool) -> bool:
        edge = self.edges.get(edge_id)
        if edge is None:
            return False
        edge.draining = draining
        return True

    # ---- edges talking to us ----
    def register(self, edge_id: str, url: str, region: str = "default") -> EdgeRecord:
        if edge_id not in self.edges and len(self.edges) >= MAX_EDGES:
            raise ValueError("too many edges")
        edge = self.edges.get(edge_id)
        if edge is None:
            edge = self.edges[edge_id] = EdgeRecord(edge_id, url, region)
        edge.url, edge.region = url, region
        edge.healthy = True
        edge.failures = 0
        edge.last_seen, edge.last_seen_mono = self.wall(), self.clock()
        return edge

    def heartbeat(self, edge_id: str, load: dict[str, Any]) -> bool:
        edge = self.edges.get(edge_id)
        if edge is None:
            return False
        edge.load = {k: float(load.get(k, 0) or 0) for k in ("connections", "bandwidth_bps", "cpu")}
        edge.last_seen, edge.last_seen_mono = self.wall(), self.clock()
        return True

    def remove(self, edge_id: str) -> bool:
        return self.edges.pop(edge_id, None) is not None

    # ---- health ----
    def expire(self) -> None:
        """An edge silent for three heartbeats is unhealthy even if its port still answers."""
        now = self.clock()
        for edge in self.edges.values():
            if now - edge.last_seen_mono > 3 * self.heartbeat_interval:
                edge.healthy = False

    async def check_once(self) -> None:
        edges = list(self.edges.values())
        await asyncio.gather(*(self._check(e) for e in edges), return_exceptions=True)
        self.expire()

    async def _check(self, edge: EdgeRecord) -> None:
        ok, latency = await probe(self._pool(edge.url), deadline=max(0.2, self.health_interval * 0.5))
        if ok:
            edge.failures = 0
            edge.latency_ms = latency * 1000.0
            if self.clock() - edge.last_seen_mono <= 3 * self.heartbeat_interval:
                edge.healthy = True
        else:
            edge.failures += 1
            edge.healthy = False

    def _pool(self, url: str) -> UpstreamPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = UpstreamPool(url, UpstreamLimits(connect_timeout=1.0, read_timeout=1.0,
                                                                       max_idle_per_host=1))
        return pool

    async def run_checks(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.check_once()
            await asyncio.sleep(max(0.0, started + self.health_interval - loop.time()))

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()

    # ---- purge/prefetch event log ----
    def publish_event(self, event: dict[str, Any]) -> int:
        self.seq += 1
        self._events.append({"seq": self.seq, **event})
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None
        return self.seq

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        if seq > self.seq:
            seq = 0  # the origin restarted: its sequence began again
        return [e for e in self._events if e["seq"] > seq]

    async def wait_events(self, seq: int, wait: float) -> list[dict[str, Any]]:
        events = self.events_after(seq)
        if events or wait <= 0:
            return events
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await asyncio.shield(self._changed)
        return self.events_after(seq)


async def probe(pool: UpstreamPool, *, deadline: float) -> tuple[bool, float]:
    """GET /healthz on an edge: (answered 200, seconds taken)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            resp = await pool.request("GET", "/healthz", [("user-agent", "hivecast-health")])
            await resp.read_all(64 * 1024)
    except (NetError, TimeoutError, OSError):
        return False, 0.0
    return resp.status == 200, time.monotonic() - started
