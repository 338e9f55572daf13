"""The node component that owns every `/ws/...` route: the echo endpoint and the real-time hub."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hivecast.ws import Options, WebSocketServer, echo
from hivecast.ws.handshake import OriginCheck

if TYPE_CHECKING:
    from hivecast.config.settings import WsSettings
    from hivecast.node.node import Node

log = logging.getLogger(__name__)


def ws_options(cfg: WsSettings) -> Options:
    return Options(
        max_message_size=cfg.max_message_size, max_queue=cfg.max_queue, write_limit=cfg.write_limit,
        write_high=min(256 * 1024, cfg.write_limit), ping_interval=cfg.ping_interval,
        ping_timeout=cfg.ping_timeout, idle_timeout=cfg.idle_timeout, close_timeout=cfg.close_timeout,
        compress_min_size=cfg.compress_min_size, enable_deflate=cfg.deflate,
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

    async def start(self, node: Node) -> None:
        cfg = node.settings.ws
        self.server = WebSocketServer(ws_options(cfg))
        node.services["ws_server"] = self.server
        if cfg.echo:
            node.router.exact("/ws/echo", self.server.route(echo))
            log.info("websocket echo endpoint at /ws/echo")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
