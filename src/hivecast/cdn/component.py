"""Node components of the CDN: the standalone edge, the edge embedded in `serve`, and the origin
side (edge registry, health checks, event log, HTTP 302 router)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hivecast.cdn.agent import EdgeAgent
from hivecast.cdn.edge import EdgeCache, EdgeConfig
from hivecast.cdn.local import LocalUpstream
from hivecast.cdn.passthrough import PassThrough
from hivecast.cdn.registry import EdgeRegistry
from hivecast.cdn.ring import RingStatsCollector, RingUpstream
from hivecast.cdn.selection import RegionMap, choose
from hivecast.cdn.stats import StatsCollector
from hivecast.cdn.store import CacheStore
from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool
from hivecast.chord.server import ChordServer
from hivecast.config.settings import CdnSettings
from hivecast.events import Subscription
from hivecast.http import FileBody, HttpServer, Request, Response
from hivecast.http.server import Handler
from hivecast.net import NetError
from hivecast.node.frontdoor import FrontDoor, http_limits, http_tls
from hivecast.node.node import Node, StartupError

log = logging.getLogger(__name__)


def cache_root(node: Node, worker: int = 0) -> Path:
    cfg = node.settings.cdn
    root = cfg.cache_dir if cfg.cache_dir is not None else node.settings.cache_dir
    return root / f"w{worker}" if cfg.workers > 1 else root


def build_store(node: Node, root: Path) -> CacheStore:
    cfg = node.settings.cdn
    share = cfg.workers
    store = CacheStore(root, disk_budget=cfg.cache_size // share, memory_budget=cfg.memory_size // share,
                       memory_object_max=cfg.memory_object_max, policy=cfg.policy)
    try:
        found = store.open()
    except OSError as exc:
        raise StartupError(f"cache directory {root}: {exc.strerror or exc}") from None
    log.info("edge cache at %s: %d objects from disk, policy %s", root, found, cfg.policy)
    return store


def edge_config(cfg: CdnSettings, authority: str | None) -> EdgeConfig:
    return EdgeConfig(read_timeout=cfg.upstream_timeout, max_object_size=cfg.max_object_size,
                      pass_prefixes=tuple(cfg.pass_prefixes), surrogate_target=cfg.surrogate_target,
                      prefetch_segments=cfg.prefetch_segments, authority=authority)


def _register_stats(node: Node, edge: EdgeCache) -> None:
    store = edge.store
    collector = StatsCollector(edge.stats, lambda: {"memory": store.memory.used, "disk": store.disk.used})
    with contextlib.suppress(ValueError):
        node.metrics.registry.register(collector)

    async def stats(request: Request) -> Response:
        snap = edge.stats.snapshot()
        snap.update({"objects": store.object_count, "memory_bytes": store.memory.used,
                     "disk_bytes": store.disk.used, "disk_budget": store.disk.budget,
                     "evictions": store.evictions, "inflight": len(edge.inflight), "policy": node.settings.cdn.policy})
        return Response.json(snap, headers=[("cache-control", "no-store")])

    node.router.exact("/cdn/v1/stats", stats)


def _subscribe_bus(node: Node, edge: EdgeCache) -> list[Subscription]:
    subs = [node.bus.subscribe("cdn.purge"), node.bus.subscribe("cdn.prefetch")]

    async def pump(sub: Subscription) -> None:
        async for event in sub:
            if event.topic == "cdn.purge":
                edge.purge(str(event.data.get("kind", "url")), [str(v) for v in event.data.get("values", [])])
            else:
                edge.prefetch([str(u) for u in event.data.get("urls", [])])

    for sub in subs:
        node.spawn(pump(sub), name=f"cdn bus {sub.pattern}")
    return subs


class EdgeFrontDoor(FrontDoor):
    """The front door of a standalone edge: SO_REUSEPORT so `--workers N` processes share the port."""

    async def start(self, node: Node) -> None:
        # No per-request Prometheus observer here: the edge counts its own responses (EdgeStats),
        # and a labelled counter plus a histogram per request costs a tenth of a hot hit.
        self._node = node
        node.router.exact("/healthz", self._healthz)
        node.router.exact("/metrics", self._metrics)
        self.server = HttpServer(node.router, host=node.settings.host, port=node.settings.http_port,
                                 limits=http_limits(node), reuse_port=node.settings.cdn.workers > 1,
                                 tls=http_tls(node))
        await self.server.start()
        node.metrics.http_connections.set_function(lambda: self.server.active_connections if self.server else 0)
        node.services["http_port"] = self.server.port


class EdgeComponent:
    """`hivecast edge`: the cache in front of --parent or --origin, and pass-through to the origin."""

    name = "cdn-edge"

    def __init__(self) -> None:
        self.worker = 0
        self.edge: EdgeCache | None = None
        self.agent: EdgeAgent | None = None
        self._pools: list[UpstreamPool] = []
        self._subs: list[Subscription] = []
        self.ring: RingUpstream | None = None
        self.chord: ChordServer | None = None

    async def start(self, node: Node) -> None:
        s = node.settings
        cfg = s.cdn
        self.worker = cfg.worker_index
        if s.origin_url is None:
            raise StartupError("the edge role needs --origin URL")
        limits = UpstreamLimits(connect_timeout=cfg.connect_timeout, read_timeout=cfg.upstream_timeout)
        try:
            origin = UpstreamPool(s.origin_url, limits)
            upstream = UpstreamPool(s.parent_url, limits) if s.parent_url else origin
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        self._pools = [origin] if upstream is origin else [origin, upstream]
        store = build_store(node, cache_root(node, self.worker))
        passthrough = PassThrough(origin, max_body=s.limits.max_body_bytes)
        fills: UpstreamPool | RingUpstream = upstream
        if cfg.ring:
            if cfg.workers > 1:
                raise StartupError("[cdn] ring needs workers = 1 (each worker would be a ring member of its own)")
            # The ring sits in front of this edge's upstream (origin or parent): only a key's owner uses it.
            self.ring = RingUpstream(upstream, limits=limits, peer_timeout=cfg.ring_timeout,
                                     lookup_timeout=cfg.ring_lookup_timeout)
            fills = self.ring
            with contextlib.suppress(ValueError):
                node.metrics.registry.register(RingStatsCollector(self.ring.stats))
            node.router.exact("/cdn/v1/ring", self._ring_api)
            self.chord = ChordServer(host=s.host, port=cfg.ring_port)
            try:
                node.services["ring_port"] = (await self.chord.bind())[1]
            except NetError as exc:
                raise StartupError(f"[cdn] ring_port {cfg.ring_port}: {exc}") from None
        self.edge = EdgeCache(store, fills, passthrough=passthrough, config=edge_config(cfg, None))
        node.router.fallback = self.edge
        node.services["edge_cache"] = self.edge
        _register_stats(node, self.edge)
        self._subs = _subscribe_bus(node, self.edge)
        node.spawn(self._register_later(node), name="cdn edge agent")

    async def _register_later(self, node: Node) -> None:
        """Registration needs the listening port, known once the front door has started."""
        await node.ready.wait()
        if self.worker != 0 or self.edge is None:
            return
        s = node.settings
        cfg = s.cdn
        port = node.services.get("http_port", s.http_port)
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
        public = cfg.public_url or f"http://{host}:{port}"
        if self.ring is not None:
            await self._join_ring(node, public)
        front = next((c.server for c in node.components if isinstance(c, FrontDoor)), None)
        assert s.origin_url is not None
        self.agent = EdgeAgent(
            self.edge, origin_url=s.origin_url, edge_id=cfg.edge_id or f"{host}:{port}", public_url=public,
            region=cfg.region, heartbeat_interval=cfg.heartbeat_interval,
            connections=lambda: front.active_connections if front is not None else 0, cluster_key=cfg.cluster_key)
        node.services["edge_agent"] = self.agent
        node.spawn(self.agent.run_heartbeats(), name="cdn heartbeats")
        node.spawn(self.agent.run_events(), name="cdn events")

    async def _join_ring(self, node: Node, public: str) -> None:
        """Start this edge's Chord node (named by its public URL, so a restart keeps its arc) and
        join the region's ring through the seeds."""
        assert self.ring is not None and self.chord is not None
        cfg = node.settings.cdn
        public = public.rstrip("/")
        seeds = [addr for seed in cfg.ring_seeds if (addr := await _resolve(seed)) is not None]
        # Members pass each other's addresses on: a wildcard bind advertises the public URL's host.
        advertise: str | None = node.settings.host
        if advertise in ("0.0.0.0", "::", ""):
            resolved = await _resolve(f"{urlsplit(public).hostname or '127.0.0.1'}:0")
            advertise = resolved[0] if resolved is not None else None
        self.chord.url = self.chord.name = public
        await self.chord.start(seeds=seeds, advertise=advertise)
        self.ring.attach(self.chord, public)
        log.info("edge ring node on udp %s:%d, %d seeds", node.settings.host, self.chord.me.addr[1], len(seeds))

    async def _ring_api(self, request: Request) -> Response:
        """This edge's view of the ring and its fill counters; `?key=/path` looks a key's owner up."""
        no_store = [("cache-control", "no-store")]
        if self.chord is None or self.ring is None:
            return Response.json({"error": "not on the ring yet"}, status=503, headers=no_store)
        body: dict[str, object] = {"node": self.chord.state(), "fills": self.ring.stats.snapshot()}
        key = request.query.get("key")
        if key is not None:
            if not key.startswith("/") or len(key) > 4096:
                return Response.json({"error": "key is a path"}, status=400, headers=no_store)
            body["key"] = key
            body["owner"] = await self.chord.owner_of(key, timeout=self.ring.lookup_timeout)
        return Response.json(body, headers=no_store)

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        if self.chord is not None:
            await self.chord.stop()  # leave first: the others stop asking us within a stabilization round
        if self.edge is not None:
            await self.edge.close()
        if self.ring is not None:
            await self.ring.close()
        if self.agent is not None:
            await self.agent.close()
        for pool in self._pools:
            await pool.close()


async def _resolve(host_port: str) -> tuple[str, int] | None:
    """host:port to an IPv4 address (a seed, or the host we advertise), None if it does not resolve."""
    host, _, port = host_port.rpartition(":")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host.strip("[]"), int(port), family=socket.AF_INET,
                                                              type=socket.SOCK_DGRAM)
    except (OSError, ValueError) as exc:
        log.warning("ring address %s does not resolve: %s", host_port, exc)
        return None
    return (str(infos[0][4][0]), int(infos[0][4][1])) if infos else None


class EmbeddedEdge:
    """`hivecast serve`: the cache wraps the origin's /live and /vod handlers in-process.

    Started before MediaRoutes; MediaRoutes asks `node.services["edge_wrap"]` to wrap its handlers."""

    name = "cdn-embedded"

    def __init__(self) -> None:
        self.edge: EdgeCache | None = None
        self._handlers: dict[str, Handler] = {}
        self._subs: list[Subscription] = []

    async def start(self, node: Node) -> None:
        if not node.settings.cdn.embedded:
            return
        store = build_store(node, cache_root(node))
        local = LocalUpstream(self._handlers)

        async def no_pass(request: Request) -> Response:
            return Response.text("method not allowed\n", status=405)

        cfg = edge_config(node.settings.cdn, None)
        cfg.pass_prefixes = ()
        cfg.prefetch_segments = 0  # the origin is in this process: nothing to win by prefetching
        self.edge = EdgeCache(store, local, passthrough=no_pass, config=cfg)
        node.services["edge_cache"] = self.edge
        _register_stats(node, self.edge)
        self._subs = _subscribe_bus(node, self.edge)

        direct_min = node.settings.cdn.memory_object_max + 1 if node.settings.cdn.embedded_direct else None

        def wrap(prefix: str, handler: Handler) -> Handler:
            self._handlers[prefix] = handler
            local.handlers = sorted(self._handlers.items(), key=lambda item: len(item[0]), reverse=True)
            assert self.edge is not None
            return EmbeddedFront(self.edge, handler, direct_min)

        node.services["edge_wrap"] = wrap

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        if self.edge is not None:
            await self.edge.close()


class EmbeddedFront:
    """One media prefix of `serve`: small objects (playlists, manifests) through the edge cache,
    large files straight from the media store with zero-copy sendfile. Copying a local file into
    a local cache would cost a write and gain nothing; the memory tier is what helps."""

    def __init__(self, edge: EdgeCache, handler: Handler, direct_min: int | None) -> None:
        self.edge = edge
        self.handler = handler
        self.direct_min = direct_min
        self.fast = edge.fast

    async def __call__(self, request: Request) -> Response:
        edge = self.edge
        if self.direct_min is not None and request.method in ("GET", "HEAD"):
            key = request.raw_path + ("?" + request.query_string if request.query_string else "")
            if key not in edge.inflight and edge.store.lookup(key, request.headers, touch=False) is None:
                response = await self.handler(request)
                body = response.body
                size = 0
                if isinstance(body, FileBody):
                    try:
                        size = os.stat(body.path).st_size
                    except OSError:
                        size = 0
                # Large files, and answers without a file (304, 404, 416), go out as the store
                # gave them; a small file goes through the cache, which asks the store again.
                if not isinstance(body, FileBody) or size >= self.direct_min:
                    edge.stats.requests += 1
                    edge.stats.passed += 1
                    response.headers.append(("x-cache", "ORIGIN"))
                    return response
        return await edge(request)


class OriginCdn:
    """The origin side: edge registry (+ health checks), the purge/prefetch log, the 302 router."""

    name = "cdn-origin"

    def __init__(self) -> None:
        self.registry: EdgeRegistry | None = None
        self._subs: list[Subscription] = []

    async def start(self, node: Node) -> None:
        cfg = node.settings.cdn
        registry = EdgeRegistry(health_interval=cfg.health_interval, heartbeat_interval=cfg.heartbeat_interval)
        self.registry = registry
        node.services["edge_registry"] = registry
        regions = RegionMap.from_config(cfg.regions)
        for topic in ("cdn.purge", "cdn.prefetch"):
            sub = node.bus.subscribe(topic)
            self._subs.append(sub)
            node.spawn(self._log_events(sub), name=f"cdn log {topic}")
        node.spawn(registry.run_checks(), name="cdn health checks")
        node.router.prefix("/cdn/v1/", self._make_api(registry, regions, cfg.cluster_key))

    async def _log_events(self, sub: Subscription) -> None:
        assert self.registry is not None
        async for event in sub:
            self.registry.publish_event({"topic": event.topic, "data": dict(event.data)})

    @staticmethod
    def _make_api(registry: EdgeRegistry, regions: RegionMap, cluster_key: str | None) -> Handler:
        expected = f"Bearer {cluster_key}" if cluster_key else None

        async def api(request: Request) -> Response:
            path = request.path
            method = request.method
            no_store = [("cache-control", "no-store")]
            # Edges' own calls (register, heartbeat, drain, event log) need the cluster key when
            # one is set; the edge list and the redirect router are public.
            private = method == "POST" or path == "/cdn/v1/events"
            if private and expected is not None and not hmac.compare_digest(
                    request.headers.get("authorization") or "", expected):
                return Response.json({"error": "cluster key required"}, status=401, headers=no_store)
            if path == "/cdn/v1/edges" and method == "GET":
                return Response.json({"edges": registry.list_edges()}, headers=no_store)
            if path == "/cdn/v1/edges" and method == "POST":
                data = await _json_body(request)
                if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
                        or not str(data.get("url", "")).startswith("http://"):
                    return Response.json({"error": "need id and http:// url"}, status=400)
                try:
                    registry.register(data["id"][:200], str(data["url"])[:500], str(data.get("region", "default"))[:100])
                except ValueError as exc:
                    return Response.json({"error": str(exc)}, status=429)
                return Response.json({"ok": True, "health_interval": registry.health_interval}, headers=no_store)
            if path.startswith("/cdn/v1/edges/") and method == "POST":
                edge_id, _, action = path[len("/cdn/v1/edges/"):].rpartition("/")
                data = await _json_body(request)
                if action == "heartbeat":
                    load = data.get("load", {}) if isinstance(data, dict) else {}
                    ok = registry.heartbeat(edge_id, load if isinstance(load, dict) else {})
                elif action == "drain":
                    ok = registry.set_draining(edge_id, bool(data.get("draining", True)) if isinstance(data, dict)
                                               else True)
                else:
                    return Response.json({"error": "unknown action"}, status=404)
                return Response.json({"ok": ok}, status=200 if ok else 404, headers=no_store)
            if path == "/cdn/v1/events" and method == "GET":
                try:
                    after = int(request.query.get("after", "0"))
                    wait = min(30.0, max(0.0, float(request.query.get("wait", "0"))))
                except ValueError:
                    return Response.json({"error": "bad after/wait"}, status=400)
                events = await registry.wait_events(after, wait)
                return Response.json({"seq": registry.seq, "events": events}, headers=no_store)
            if path.startswith("/cdn/v1/redirect/") and method in ("GET", "HEAD"):
                target = "/" + path[len("/cdn/v1/redirect/"):]
                client = (request.headers.get("x-forwarded-for") or request.client[0]).split(",")[0].strip()
                chosen = choose(registry.list_edges(), region=regions.region_of(client), key=target)
                if not chosen:
                    return Response.text("503 no healthy edge\n", status=503, headers=no_store)
                query = f"?{request.query_string}" if request.query_string else ""
                location = str(chosen[0]["url"]).rstrip("/") + target + query
                return Response(302, [("location", location), ("cache-control", "no-store")], b"")
            return Response.json({"error": "not found"}, status=404)

        return api

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        if self.registry is not None:
            await self.registry.close()


async def _json_body(request: Request) -> Any:
    raw = await request.read_body(64 * 1024)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return None
