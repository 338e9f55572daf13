"""The HTTP front door component: one port for the UI, API, WebSocket, media, health and metrics."""

from __future__ import annotations

import logging
import ssl

from hivecast.http import HttpLimits, HttpServer, Request, Response
from hivecast.http.tls import TlsConfigError, server_context
from hivecast.metrics import CONTENT_TYPE_LATEST
from hivecast.node.node import Node, StartupError

log = logging.getLogger(__name__)


def http_limits(node: Node) -> HttpLimits:
    lim = node.settings.limits
    return HttpLimits(
        max_connections=lim.max_connections,
        idle_timeout=lim.idle_timeout,
        header_timeout=lim.header_timeout,
        max_header_bytes=lim.max_header_bytes,
        max_headers=lim.max_headers,
        max_body_bytes=lim.max_body_bytes,
        read_buffer=lim.read_buffer,
        write_buffer_high=lim.write_buffer_high,
        write_buffer_max=max(lim.write_buffer_max, lim.write_buffer_high),
        write_timeout=lim.write_timeout,
    )


def http_tls(node: Node) -> ssl.SSLContext | None:
    """The front door's TLS context when a certificate is configured; a bad one stops the start."""
    cert, key = node.settings.http_tls_cert, node.settings.http_tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise StartupError("http: set both http_tls_cert and http_tls_key for HTTPS (or neither)")
    try:
        return server_context(cert, key)
    except TlsConfigError as exc:
        raise StartupError(f"http: {exc}") from None


class FrontDoor:
    name = "http"

    def __init__(self) -> None:
        self.server: HttpServer | None = None
        self._node: Node | None = None

    async def start(self, node: Node) -> None:
        self._node = node
        router = node.router
        router.exact("/healthz", self._healthz)
        router.exact("/metrics", self._metrics)
        limits = http_limits(node)
        for name, value in vars(node.settings.limits).items():
            node.metrics.limit.labels(name=name).set(float(value))
        requests, seconds = node.metrics.http_requests, node.metrics.http_seconds

        def observe(request: Request, status: int, elapsed: float) -> None:
            route = request.route_prefix or "other"
            requests.labels(route=route, status=str(status)).inc()
            seconds.labels(route=route).observe(elapsed)

        self.server = HttpServer(router, host=node.settings.host, port=node.settings.http_port,
                                 limits=limits, observer=observe, tls=http_tls(node))
        await self.server.start()
        node.metrics.http_connections.set_function(lambda: self.server.active_connections if self.server else 0)
        node.services["http_port"] = self.server.port
        node.services["http_scheme"] = self.server.scheme
        log.info("%s listening on %s:%d", self.server.scheme, node.settings.host, self.server.port,
                 extra={"role": node.role})

    async def _healthz(self, request: Request) -> Response:
        node = self._node
        assert node is not None
        if self.server is not None and self.server.closing:
            return Response.json({"status": "stopping"}, status=503)
        return Response.json({"status": "ok", "role": node.role},
                             headers=[("cache-control", "no-store")])

    async def _metrics(self, request: Request) -> Response:
        node = self._node
        assert node is not None
        return Response(200, [("content-type", CONTENT_TYPE_LATEST), ("cache-control", "no-store")],
                        node.metrics.render())

    async def stop(self) -> None:
        if self.server is not None:
            assert self._node is not None
            await self.server.close(grace=max(0.2, self._node.settings.limits.shutdown_grace - 0.3))
