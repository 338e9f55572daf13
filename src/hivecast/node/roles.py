"""Which components each role runs, and in what order (started first, stopped last)."""

from __future__ import annotations

from hivecast.api.component import StoreComponent
from hivecast.cdn.component import EdgeComponent, EdgeFrontDoor, EmbeddedEdge, OriginCdn
from hivecast.config import Settings
from hivecast.dht.component import DhtComponent
from hivecast.media.packaging.livepackager import LivePackager
from hivecast.media.packaging.service import PackagerService
from hivecast.node.frontdoor import FrontDoor
from hivecast.node.media import MediaRoutes
from hivecast.node.node import Node, StartupError
from hivecast.node.web import ApiAndWeb
from hivecast.p2p.service import TorrentService
from hivecast.realtime.component import WebSocketRoutes
from hivecast.rtmp.component import RtmpComponent
from hivecast.rtsp.component import RtspComponent


def build_node(settings: Settings) -> Node:
    node = Node(settings)
    if settings.role == "edge":
        if settings.origin_url is None:
            raise StartupError("the edge role needs --origin URL (or origin_url in the config)")
        node.add(EdgeComponent())
        node.add(EdgeFrontDoor())
        return node
    node.add(StoreComponent())  # first to start, last to stop: the others read and write through it
    if settings.role == "serve":
        node.add(EmbeddedEdge())
    node.add(MediaRoutes(embedded_edge=settings.role == "serve"))
    node.add(OriginCdn())
    node.add(RtspComponent())
    node.add(RtmpComponent())
    node.add(PackagerService())
    node.add(LivePackager())
    node.add(ApiAndWeb())
    if settings.p2p.enabled:
        node.add(TorrentService())
    node.add(DhtComponent())
    node.add(FrontDoor())
    node.add(WebSocketRoutes())  # after the front door, so it stops first and says 1001 to its clients
    return node
