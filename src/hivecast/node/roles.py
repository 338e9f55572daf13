"""Which components each role runs, and in what order (started first, stopped last)."""

from __future__ import annotations

from hivecast.config import Settings
from hivecast.node.frontdoor import FrontDoor
from hivecast.node.media import MediaRoutes
from hivecast.node.node import Node, StartupError
from hivecast.node.web import ApiAndWeb
from hivecast.rtmp.component import RtmpComponent
from hivecast.rtmp.edge import FlvEdge
from hivecast.rtsp.component import RtspComponent


def build_node(settings: Settings) -> Node:
    node = Node(settings)
    if settings.role == "edge":
        if settings.origin_url is None:
            raise StartupError("the edge role needs --origin URL (or origin_url in the config)")
        node.add(FlvEdge())  # HTTP-FLV: one upstream per stream, fanned out to this edge's viewers
        node.add(FrontDoor())
        return node
    node.add(RtspComponent())
    node.add(RtmpComponent())  # before MediaRoutes: it owns the /live/ prefix first (HTTP-FLV)
    node.add(MediaRoutes(embedded_edge=settings.role == "serve"))
    node.add(ApiAndWeb())
    node.add(FrontDoor())
    return node
