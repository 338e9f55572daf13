"""Media routes of an origin: /live and /vod from the media store on disk.

In the all-in-one role the edge cache (hivecast.cdn) wraps these handlers, so the default
deployment exercises the CDN path.
"""

from __future__ import annotations

from pathlib import Path

from hivecast.http import Handler, Request, Response, StaticFiles
from hivecast.node.node import Node


class MediaOrigin:
    """What the origin answers below one media prefix: a handler a component mounted for a stream
    (the live packager's playlists with blocking reload), else the file from the media store.

    It sits behind the embedded edge cache in `serve`, so everything below /live/ and /vod/ goes
    through the cache, whoever produces it.
    """

    def __init__(self, prefix: str, root: Path) -> None:
        self.prefix = prefix
        self.files = StaticFiles(root)
        self._mounts: dict[str, Handler] = {}

    def mount(self, name: str, handler: Handler) -> None:
        """Answer `{prefix}{name}/...` with `handler` (its route_prefix is `{prefix}{name}/`)."""
        self._mounts[name] = handler

    def unmount(self, name: str) -> None:
        self._mounts.pop(name, None)

    async def __call__(self, request: Request) -> Response:
        name, sep, _ = request.path[len(self.prefix):].partition("/")
        handler = self._mounts.get(name) if sep else None
        if handler is None:
            request.route_prefix = self.prefix
            return await self.files(request)
        request.route_prefix = f"{self.prefix}{name}/"
        try:
            return await handler(request)
        finally:
            request.route_prefix = self.prefix  # metrics label by route, never by stream name


class MediaRoutes:
    name = "media"

    def __init__(self, *, embedded_edge: bool) -> None:
        self.embedded_edge = embedded_edge

    async def start(self, node: Node) -> None:
        media = node.settings.media_dir
        wrap = node.services.get("edge_wrap") if self.embedded_edge else None
        for kind in ("live", "vod"):
            (media / kind).mkdir(parents=True, exist_ok=True)
            origin = MediaOrigin(f"/{kind}/", media / kind)
            node.services[f"{kind}_origin"] = origin
            handler: Handler = origin
            if wrap is not None:
                handler = wrap(f"/{kind}/", handler)  # the edge cache, in-process (hivecast.cdn)
            node.router.prefix(f"/{kind}/", handler)

    async def stop(self) -> None:
        pass
