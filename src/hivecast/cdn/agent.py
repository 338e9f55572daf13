"""The edge's side of the cluster: register with the origin, heartbeat health and load, and
long-poll the origin's purge/prefetch log, applying each event to the local cache."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from hivecast.cdn.edge import EdgeCache
from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool
from hivecast.net.errors import NetError

log = logging.getLogger(__name__)

POLL_WAIT = 20.0


class EdgeAgent:
    def __init__(self, edge: EdgeCache, *, origin_url: str, edge_id: str, public_url: str, region: str,
                 heartbeat_interval: float, connections: Callable[[], int], cluster_key: str | None = None) -> None:
        self.edge = edge
        self.edge_id = edge_id
        self.public_url = public_url
        self.region = region
        self.heartbeat_interval = heartbeat_interval
        self.connections = connections
        self.auth = [("authorization", f"Bearer {cluster_key}")] if cluster_key else []
        self.pool = UpstreamPool(origin_url, UpstreamLimits(connect_timeout=2.0, read_timeout=POLL_WAIT + 5.0,
                                                            max_idle_per_host=4))
        self.registered = False
        self.seq = 0
        self.events_applied = 0
        self._last = (time.monotonic(), 0, sum(os.times()[:2]))

    async def _call(self, method: str, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
        body = json.dumps(data).encode() if data is not None else b""
        headers = [*self.auth, ("content-type", "application/json")]
        resp = await self.pool.request(method, path, headers, body)
        raw = await resp.read_all(8 * 1024 * 1024)
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None

    def load(self) -> dict[str, float]:
        now, served, cpu = time.monotonic(), self.edge.stats.bytes_served, sum(os.times()[:2])
        then, served_then, cpu_then = self._last
        self._last = (now, served, cpu)
        elapsed = max(1e-3, now - then)
        return {"connections": float(self.connections()), "bandwidth_bps": (served - served_then) * 8 / elapsed,
                "cpu": max(0.0, (cpu - cpu_then) / elapsed)}

    async def register(self) -> bool:
        status, _ = await self._call("POST", "/cdn/v1/edges", {"id": self.edge_id, "url": self.public_url,
                                                               "region": self.region})
        self.registered = status == 200
        return self.registered

    async def run_heartbeats(self) -> None:
        while True:
            try:
                if not self.registered:
                    await self.register()
                else:
                    status, _ = await self._call("POST", f"/cdn/v1/edges/{self.edge_id}/heartbeat",
                                                 {"load": self.load()})
                    if status == 404:  # the origin restarted and forgot us
                        await self.register()
            except NetError as exc:
                log.debug("heartbeat to origin failed: %s", exc)
                self.registered = False
            await asyncio.sleep(self.heartbeat_interval)

    def apply(self, event: dict[str, Any], *, replay: bool = False) -> None:
        kind = event.get("topic")
        data = event.get("data") or {}
        if kind == "cdn.purge":
            values = [str(v) for v in data.get("values", [])]
            self.edge.purge(str(data.get("kind", "url")), values)
        elif kind == "cdn.prefetch" and not replay:
            self.edge.prefetch([str(u) for u in data.get("urls", [])])
        self.events_applied += 1

    async def run_events(self) -> None:
        first = True
        while True:
            try:
                status, body = await self._call("GET", f"/cdn/v1/events?after={self.seq}&wait={POLL_WAIT:g}")
                if status == 200 and isinstance(body, dict):
                    for event in body.get("events", []):
                        self.apply(event, replay=first)
                    # The log holds every event up to `seq`; a smaller seq means the origin restarted.
                    self.seq = int(body.get("seq", 0))
                    first = False
                else:
                    await asyncio.sleep(1.0)
            except NetError as exc:
                log.debug("event poll failed: %s", exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        await self.pool.close()
