"""The node component for RTMP: the RTMP server, HTTP-FLV at /live/NAME.flv, push relays, metrics.

Publishes `rtmp_server`, `rtmp_port` (and `rtmps_port`), `rtmp_fanout` and `rtmp_relays` (a
`RelayManager`: push relays and pull sources from `[rtmp] push` / `[rtmp] pull`, changeable at run
time, with a status per target for the API) in `node.services`. It uses
the node's `live_registry` (creating it when the RTSP component is absent) and the publish rules
of the contracts: `--open-publish`, else `node.services["publish_authorizer"]`, else the configured
keys (`[rtmp] publish_keys`, then `[rtsp] publish_keys`).

Stream keys OBS style: publishing to `rtmp://HOST/live/KEY` with a configured key maps to that
key's stream name; with an authorizer, the name and the key are both KEY
(`authorize_publish(KEY, KEY)`), so an authorizer that knows keys can accept it.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from hivecast.media import LiveRegistry
from hivecast.media.publishing import authorize_publish
from hivecast.net.errors import AddressInUse
from hivecast.node.node import StartupError
from hivecast.rtmp.fanout import FanoutManager, FanoutSettings
from hivecast.rtmp.httpflv import HttpFlv
from hivecast.rtmp.relay import RelayManager
from hivecast.rtmp.server import RtmpServer, tls_context

if TYPE_CHECKING:
    from hivecast.node.node import Node

log = logging.getLogger(__name__)


class RtmpComponent:
    name = "rtmp"

    def __init__(self) -> None:
        self.server: RtmpServer | None = None
        self.fanout: FanoutManager | None = None
        self.relays: RelayManager | None = None
        self._node: Node | None = None

    def _keys(self) -> dict[str, str]:
        assert self._node is not None
        settings = self._node.settings
        keys: dict[str, str] = dict(getattr(getattr(settings, "rtsp", None), "publish_keys", {}) or {})
        keys.update(settings.rtmp.publish_keys)
        return keys

    async def authorize_publish(self, name: str, key: str | None) -> bool:
        assert self._node is not None
        return await authorize_publish(name, key, open_publish=self._node.settings.open_publish, keys=self._keys(),
                                       authorizer=self._node.services.get("publish_authorizer"))

    def resolve_key(self, candidate: str) -> str | None:
        """The stream name whose configured key is `candidate` (OBS puts the key where the name goes)."""
        for name, key in self._keys().items():
            if name != "*" and hmac.compare_digest(key, candidate):
                return name
        return None

    async def start(self, node: Node) -> None:
        self._node = node
        settings = node.settings
        cfg = settings.rtmp
        registry = node.services.get("live_registry")
        if registry is None:
            registry = LiveRegistry(node.bus)
            node.services["live_registry"] = registry
        self.fanout = FanoutManager(registry, FanoutSettings(
            batch_ms=cfg.batch_ms, chunk_size=cfg.chunk_size, max_queue_bytes=cfg.reader_buffer_bytes,
            write_timeout=cfg.write_timeout))
        node.services["rtmp_fanout"] = self.fanout
        # HTTP-FLV: `/live/NAME.flv` is a suffix route beside the media store's `/live/`; an endless
        # live stream is not something the edge cache can store, so it goes to viewers directly.
        flv = HttpFlv(self.fanout, play_wait=min(cfg.play_wait, 5.0), idle_timeout=cfg.idle_timeout)
        node.router.prefix("/live/", flv, suffix=".flv")
        if not cfg.enabled:
            return
        tls = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            try:
                tls = tls_context(str(cfg.tls_cert), str(cfg.tls_key))
            except (OSError, ssl.SSLError) as exc:
                raise StartupError(f"rtmp: cannot load the RTMPS certificate or key: {exc}") from None
        self.server = RtmpServer(registry, self.fanout, host=settings.host, port=cfg.port, settings=cfg,
                                 authorize=self.authorize_publish, resolve_key=self.resolve_key,
                                 limits=settings.limits.connection_limits(), bus=node.bus,
                                 tls=tls, tls_port=cfg.tls_port)
        try:
            await self.server.start()
        except AddressInUse as exc:
            if cfg.port != 1935:
                raise
            # The default port is taken (another node in this process, a system nginx-rtmp): run
            # without RTMP ingest rather than refuse to start the node; the log says why.
            log.error("rtmp disabled: %s (set [rtmp] port, 0 for any free port)", exc)
            self.server = None
        if self.server is not None:
            node.services["rtmp_server"] = self.server
            node.services["rtmp_port"] = self.server.port
            if self.server.tls_port is not None:
                node.services["rtmps_port"] = self.server.tls_port
            log.info("rtmp listening on %s:%d", settings.host, self.server.port)
        self._metrics(node, flv)
        self.relays = RelayManager(registry, retry_min=cfg.relay_retry_min, retry_max=cfg.relay_retry_max)
        for name, url in cfg.pull.items():
            self.relays.add_pull(name, url)
        for name, targets in cfg.push.items():
            for url in targets:
                self.relays.add_push(name, url)
        node.services["rtmp_relays"] = self.relays

    def _metrics(self, node: Node, flv: HttpFlv) -> None:
        reg = node.metrics.registry
        server = self.server
        fanout = self.fanout
        assert fanout is not None

        def gauge(name: str, doc: str, fn: Any) -> None:
            Gauge(name, doc, registry=reg).set_function(fn)

        if server is not None:
            gauge("hivecast_rtmp_connections", "Open RTMP connections", lambda: server.connections)
            gauge("hivecast_rtmp_publishers", "RTMP publishers live", lambda: server.publishers)
            gauge("hivecast_rtmp_players", "RTMP players", lambda: server.players)
            gauge("hivecast_rtmp_received_bytes", "Bytes received from RTMP peers", lambda: server.bytes_received)
            gauge("hivecast_rtmp_refused", "RTMP publishes or connects refused", lambda: server.refused)
            gauge("hivecast_rtmp_protocol_errors", "RTMP connections dropped for protocol errors",
                  lambda: server.protocol_errors)
        gauge("hivecast_flv_readers", "RTMP and HTTP-FLV readers of all streams",
              lambda: sum(len(h.readers) for h in fanout.hubs.values()))
        gauge("hivecast_flv_dropped_gops", "GOPs dropped for slow RTMP/HTTP-FLV readers (current readers)",
              lambda: sum(h.figures()["dropped_gops"] for h in fanout.hubs.values()))
        gauge("hivecast_flv_messages", "FLV messages converted (current streams)",
              lambda: sum(h.messages for h in fanout.hubs.values()))
        reg.register(_StreamCollector(server, fanout))

    async def stop(self) -> None:
        if self.relays is not None:
            await self.relays.stop()
            self.relays = None
        if self.server is not None:
            await self.server.close(grace=0.5)
            self.server = None
        if self.fanout is not None:
            self.fanout.close()


class _StreamCollector:
    """Per-stream figures for /metrics, read when scraped: publisher side and reader side."""

    def __init__(self, server: RtmpServer | None, fanout: FanoutManager) -> None:
        self.server = server
        self.fanout = fanout

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        pub = {k: GaugeMetricFamily(f"hivecast_rtmp_stream_{k}", doc, labels=["stream"]) for k, doc in (
            ("bitrate_kbps", "Publisher bitrate over the last second"), ("fps", "Publisher video frames per second"),
            ("frames", "Video frames received from the publisher"), ("bytes", "Media bytes received"))}
        if self.server is not None:
            for name, p in list(self.server.live.items()):
                for key, family in pub.items():
                    family.add_metric([name], float(p.figures.get(key, 0)))
        readers = GaugeMetricFamily("hivecast_flv_stream_readers", "RTMP and HTTP-FLV readers", labels=["stream"])
        dropped = GaugeMetricFamily("hivecast_flv_stream_dropped_gops", "GOPs dropped for slow readers",
                                    labels=["stream"])
        for name, hub in list(self.fanout.hubs.items()):
            figures = hub.figures()
            readers.add_metric([name], float(figures["readers"]))
            dropped.add_metric([name], float(figures["dropped_gops"]))
        yield from pub.values()
        yield readers
        yield dropped
