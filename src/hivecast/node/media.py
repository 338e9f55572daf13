"""Media routes of an origin: /live and /vod from the media store on disk.

In the all-in-one role the edge cache (hivecast.cdn) wraps these handlers, so the default
deployment exercises the CDN path.
"""

from __future__ import annotations

from hivecast.http import StaticFiles
from hivecast.node.node import Node


class MediaRoutes:
    name = "media"

    def __init__(self, *, embedded_edge: bool) -> None:
        self.embedded_edge = embedded_edge

    async def start(self, node: Node) -> None:
        media = node.settings.media_dir
        for kind in ("live", "vod"):
            (media / kind).mkdir(parents=True, exist_ok=True)
            node.router.prefix(f"/{kind}/", StaticFiles(media / kind))

    async def stop(self) -> None:
        pass
