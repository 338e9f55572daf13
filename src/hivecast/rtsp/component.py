"""The node component for RTSP: the live registry, the RTSP server, the demo channel and pulls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from hivecast.media.live import LiveRegistry
from hivecast.media.publishing import authorize_publish
from hivecast.rtsp.server import RtspServer

if TYPE_CHECKING:
    from hivecast.node.node import Node

log = logging.getLogger(__name__)


class RtspComponent:
    """Publishes `live_registry`, `rtsp_server` and `rtsp_port` in `node.services`."""

    name = "rtsp"

    def __init__(self) -> None:
        self.server: RtspServer | None = None
        self._node: Node | None = None
        self._extras: list[Any] = []  # demo channel and pull clients, each with async stop()

    async def start(self, node: Node) -> None:
        self._node = node
        settings = node.settings
        registry = node.services.get("live_registry")
        if registry is None:
            registry = LiveRegistry(node.bus, allow_replace=settings.rtsp.replace_publisher)
            node.services["live_registry"] = registry
        self.server = RtspServer(registry, host=settings.host, port=settings.rtsp_port, settings=settings.rtsp,
                                 authorize=self.authorize_publish,
                                 limits=settings.limits.connection_limits(), local_key=self.local_key)
        await self.server.start()
        node.services["rtsp_server"] = self.server
        self._metrics(node, self.server, registry)
        node.services["rtsp_port"] = self.server.port
        node.services["rtsp_rtp_port"] = self.server.rtp_port
        if settings.demo:
            from hivecast.media.demo import DemoChannel

            demo = DemoChannel(registry)
            await demo.start()
            self._extras.append(demo)
        for name, url in settings.rtsp.pull.items():
            from hivecast.rtsp.client import PullSource

            # A "#udp" suffix asks for RTP over UDP instead of TCP interleaved.
            transport = "udp" if url.endswith("#udp") else "tcp"
            pull = PullSource(url.removesuffix("#udp"), name, registry, transport=transport)
            pull.start()
            self._extras.append(pull)
            node.services.setdefault("rtsp_relays", []).append(pull)  # status for the API
        for name, url in settings.rtsp.push.items():
            from hivecast.rtsp.client import PushTarget

            push = PushTarget(name, url, registry, mtu=settings.rtsp.mtu)
            push.start()
            self._extras.append(push)
            node.services.setdefault("rtsp_relays", []).append(push)

    @staticmethod
    def _metrics(node: Node, server: RtspServer, registry: LiveRegistry) -> None:
        """RTSP figures and limits in the node's /metrics, read when scraped."""
        metrics_registry = node.metrics.registry
        sessions = Gauge("hivecast_rtsp_sessions", "RTSP sessions by kind", ["kind"], registry=metrics_registry)
        def count(kind: str) -> Callable[[], float]:
            return lambda: float(sum(1 for s in server.sessions.values() if s.kind == kind))

        for kind in ("play", "record"):
            sessions.labels(kind=kind).set_function(count(kind))
        Gauge("hivecast_live_streams", "Live streams in the registry",
              registry=metrics_registry).set_function(lambda: len(registry.names()))
        Gauge("hivecast_rtsp_requests", "RTSP requests answered since start",
              registry=metrics_registry).set_function(lambda: server.requests)
        Gauge("hivecast_rtsp_protocol_errors", "RTSP connections closed for bytes that are not RTSP",
              registry=metrics_registry).set_function(lambda: server.protocol_errors)
        Gauge("hivecast_rtsp_reader_drops", "Access units dropped for slow RTSP readers (current sessions)",
              registry=metrics_registry).set_function(
                  lambda: sum(r.dropped for relay in server.relays.values() for r in relay.readers.values()))
        for name, value in node.settings.rtsp.model_dump().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                node.metrics.limit.labels(name=f"rtsp_{name}").set(float(value))

    async def authorize_publish(self, name: str, key: str | None) -> bool:
        assert self._node is not None
        settings = self._node.settings
        return await authorize_publish(name, key, open_publish=settings.open_publish, keys=settings.rtsp.publish_keys,
                                       authorizer=self._node.services.get("publish_authorizer"))

    def local_key(self, name: str) -> str | None:
        """The key configured on this node for a stream (Digest needs it; the database only answers yes or no)."""
        assert self._node is not None
        if self._node.settings.open_publish:
            return None
        keys = self._node.settings.rtsp.publish_keys
        return keys.get(name, keys.get("*"))

    async def stop(self) -> None:
        for extra in reversed(self._extras):
            try:
                await extra.stop()
            except Exception:
                log.exception("stopping %r failed", extra)
        self._extras.clear()
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self._node is not None:
            registry = self._node.services.get("live_registry")
            if isinstance(registry, LiveRegistry):
                registry.close_all()
