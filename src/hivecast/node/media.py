"""Media routes of an origin: /live and /vod from the media store on disk.

In the all-in-one role the edge cache (hivecast.cdn) wraps these handlers, so the default
deployment exercises the CDN path.
"""

from __future__ import annotations

from hivecast.http import Handler, StaticFiles
from hivecast.node.node import Node


class MediaRoutes:
    name = "media"

    def __init__(self, *, embedded_edge: bool) -> None:
        self.embedded_edge = embedded_edge

    async def start(self, node: Node) -> None:
        media = node.settings.media_dir
        wrap = node.services.get("edge_wrap") if self.embedded_edge else None
        for kind in ("live", "vod"):
            (media / kind).mkdir(parents=True, exist_ok=True)
            handler: Handler = StaticFiles(media / kind)
            if wrap is not None:
                handler = wrap(f"/{kind}/", handler)  # the edge cache, in-process (hivecast.cdn)
            node.router.prefix(f"/{kind}/", handler)

    async def stop(self) -> None:
        pass
