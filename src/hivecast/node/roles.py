"""Which components each role runs, and in what order (started first, stopped last)."""

from __future__ import annotations

from hivecast.config import Settings
from hivecast.dht.component import DhtComponent
from hivecast.node.frontdoor import FrontDoor
from hivecast.node.media import MediaRoutes
from hivecast.node.node import Node, StartupError
from hivecast.node.web import ApiAndWeb
from hivecast.p2p.service import TorrentService


def build_node(settings: Settings) -> Node:
    node = Node(settings)
    if settings.role == "edge":
        if settings.origin_url is None:
            raise StartupError("the edge role needs --origin URL (or origin_url in the config)")
        node.add(FrontDoor())
        return node
    node.add(MediaRoutes(embedded_edge=settings.role == "serve"))
    node.add(ApiAndWeb())
    if settings.p2p.enabled:
        node.add(TorrentService())
    node.add(DhtComponent())
    node.add(FrontDoor())
    return node
