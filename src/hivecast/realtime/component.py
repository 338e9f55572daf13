"""The node component that owns every `/ws/...` route: the echo endpoint and the real-time hub.

Routes: `/ws/echo` (with `--ws-echo`), `/ws/live/<stream>` (chat, danmaku, presence, stream events),
`/ws/events` (dashboards: every relayed bus event and edge health; moderators only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from hivecast.auth.tokens import InvalidToken, decode_access_token, load_or_create_secret
from hivecast.http import Request, Response
from hivecast.realtime.fanout import Fanout, LocalFanout, RedisFanout
from hivecast.realtime.history import ChatHistory
from hivecast.realtime.hub import HubConfig, RealtimeHub
from hivecast.realtime.sanctions import SanctionStore
from hivecast.ws import Options, WebSocket, WebSocketServer, echo
from hivecast.ws.handshake import OriginCheck

if TYPE_CHECKING:
    from hivecast.config.settings import WsSettings
    from hivecast.node.node import Node

log = logging.getLogger(__name__)

LIVE_PREFIX = "/ws/live/"
RELAYED_TOPICS = ("stream.*", "packaging.*", "vod.*", "edge.*")
EDGE_POLL = 5.0


def ws_options(cfg: WsSettings, *, max_message_size: int | None = None) -> Options:
    return Options(
        max_message_size=max_message_size or cfg.max_message_size, max_queue=cfg.max_queue,
        write_limit=cfg.write_limit, write_high=min(256 * 1024, cfg.write_limit // 2),
        write_timeout=cfg.write_timeout, ping_interval=cfg.ping_interval,
        ping_timeout=cfg.ping_timeout, idle_timeout=cfg.idle_timeout, close_timeout=cfg.close_timeout,
        compress_min_size=cfg.compress_min_size, compress_level=cfg.compress_level, enable_deflate=cfg.deflate,
    )


def origin_check(allowed: list[str]) -> OriginCheck | None:
    if not allowed:
        return None
    allowed_set = {a.rstrip("/") for a in allowed}
    return lambda origin: origin is None or origin.rstrip("/") in allowed_set


class WebSocketRoutes:
    """Started after the front door so that it stops before it: clients get `1001 going away`."""

    name = "ws"

    def __init__(self) -> None:
        self.server: WebSocketServer | None = None
        self.hub: RealtimeHub | None = None
        self._node: Node | None = None
        self._engine: Any = None
        self._own_engine = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._subs: list[Any] = []

    async def start(self, node: Node) -> None:
        self._node = node
        settings = node.settings
        cfg = settings.ws
        self.server = WebSocketServer(ws_options(cfg))
        node.services["ws_server"] = self.server
        origins = origin_check(cfg.allowed_origins)
        if cfg.echo:
            node.router.exact("/ws/echo", self.server.route(echo, origin_allowed=origins))
            log.info("websocket echo endpoint at /ws/echo")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = load_or_create_secret(settings.data_dir, settings.auth.jwt_secret)
        history = await self._history(node)
        sanctions = SanctionStore(self._engine) if history is not None else None
        fanout = await self._fanout(settings.redis_url)
        self.hub = RealtimeHub(HubConfig(anonymous_read=cfg.anonymous_read, max_length=cfg.chat_max_length,
                                         rate_count=cfg.chat_rate_count, rate_window=cfg.chat_rate_window,
                                         history_size=cfg.history_size), fanout, history, secret, sanctions)
        try:
            await self.hub.start()
        except Exception as exc:
            if not isinstance(fanout, RedisFanout):
                raise
            log.warning("realtime: redis at %s unreachable (%s); rooms stay on this node", settings.redis_url, exc)
            await fanout.close()
            self.hub.fanout = LocalFanout()
            await self.hub.start()
        node.services["realtime_hub"] = self.hub
        hub = self.hub
        self._metrics(node, self.server, hub)
        chat_opts = ws_options(cfg, max_message_size=cfg.chat_max_frame)

        async def gate(request: Request) -> Response | None:
            token = request.query.get("token")
            if token:
                try:
                    decode_access_token(token, secret=secret)
                except InvalidToken:
                    return Response.text("invalid token\n", status=401)
            return None

        async def live(ws: WebSocket) -> None:
            await hub.serve_room(ws, ws.path[len(LIVE_PREFIX):])

        node.router.prefix(LIVE_PREFIX, self.server.route(live, gate=gate, options=chat_opts, origin_allowed=origins))
        node.router.exact("/ws/events", self.server.route(hub.serve_events, gate=gate, options=chat_opts,
                                                          origin_allowed=origins))
        for pattern in RELAYED_TOPICS:
            sub = node.bus.subscribe(pattern, maxlen=1024)
            self._subs.append(sub)
            self._tasks.append(asyncio.get_running_loop().create_task(self._relay(sub), name=f"ws-relay-{pattern}"))
        self._tasks.append(asyncio.get_running_loop().create_task(self._poll_edges(), name="ws-edge-health"))

    @staticmethod
    def _metrics(node: Node, server: WebSocketServer, hub: RealtimeHub) -> None:
        from prometheus_client import Gauge

        reg = node.metrics.registry
        for name, fn in (
            ("hivecast_ws_connections", lambda: len(server.connections)),
            ("hivecast_ws_accepted", lambda: server.accepted),
            ("hivecast_ws_rejected_handshakes", lambda: server.rejected),
            ("hivecast_ws_dropped_slow_readers", lambda: server.dropped_slow),
            ("hivecast_realtime_rooms", lambda: sum(1 for r in hub.rooms.values() if r.members)),
            ("hivecast_realtime_events_delivered", lambda: hub.delivered),
        ):
            Gauge(name, name.replace("_", " "), registry=reg).set_function(fn)
        cfg = node.settings.ws
        for key in ("max_message_size", "max_queue", "write_limit", "chat_max_frame", "chat_max_length"):
            node.metrics.limit.labels(name=f"ws.{key}").set(float(getattr(cfg, key)))

    async def _history(self, node: Node) -> ChatHistory | None:
        """Chat history (and the stored mutes and bans beside it), or None without a usable database."""
        engine = node.services.get("db")
        try:
            if engine is None:
                # no store component started (a node built without it): open and migrate the database here
                from hivecast.store import open_store

                engine = (await open_store(node.settings.effective_database_url)).engine
                self._own_engine = True
            self._engine = engine
            history = ChatHistory(engine)
            await history.create()
        except Exception as exc:
            log.warning("realtime: chat history disabled, database not usable: %s", exc)
            return None
        return history

    async def _fanout(self, url: str | None) -> Fanout:
        return RedisFanout(url) if url else LocalFanout()

    async def _relay(self, sub: Any) -> None:
        assert self.hub is not None
        async for event in sub:
            try:
                await self.hub.relay_event(event.topic, dict(event.data))
            except Exception:
                log.exception("realtime: relaying %s failed", event.topic)

    async def _poll_edges(self) -> None:
        """Edge health for dashboards: pushed when the CDN's edge registry (if any) reports a change."""
        last = ""
        while True:
            await asyncio.sleep(EDGE_POLL)
            node, hub = self._node, self.hub
            registry = node.services.get("edge_registry") if node is not None else None
            if registry is None or hub is None:
                continue
            try:
                edges = registry.list_edges()
                if asyncio.iscoroutine(edges):
                    edges = await edges
                snapshot = json.dumps(edges, sort_keys=True, default=str)
            except Exception:
                log.exception("realtime: reading edge health failed")
                continue
            if snapshot != last:
                last = snapshot
                await hub.relay_event("edge.health", {"edges": json.loads(snapshot)})

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.server is not None:
            await self.server.close()
        if self.hub is not None:
            await self.hub.stop()
        if self._own_engine and self._engine is not None:
            await self._engine.dispose()
