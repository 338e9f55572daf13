"""HTTP-FLV playback at /live/NAME.flv on the front door (a `.flv` suffix route under `/live/`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hivecast.http import Request, Response
from hivecast.rtmp.fanout import FanoutManager


class HttpFlv:
    def __init__(self, fanout: FanoutManager, *, play_wait: float, idle_timeout: float = 30.0,
                 on_miss: Callable[[str], None] | None = None) -> None:
        self.fanout = fanout
        self.on_miss = on_miss  # the edge starts its upstream fetch here
        self.play_wait = play_wait
        self.idle_timeout = idle_timeout
        self.viewers = 0

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response.text("method not allowed\n", status=405, headers=[("allow", "GET, HEAD")])
        name = request.path[len("/live/") : -len(".flv")].strip("/")
        if not name or "/" in name:
            return Response.text("not found\n", status=404)
        hub = self.fanout.hub(name)
        if hub is None and self.on_miss is not None:
            self.on_miss(name)
        deadline = time.monotonic() + self.play_wait
        while hub is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            hub = self.fanout.hub(name)
        if hub is None:
            return Response.text(f"stream {name} is not live\n", status=404, headers=[("cache-control", "no-store")])
        headers = [("content-type", "video/x-flv"), ("cache-control", "no-cache, no-store"),
                   ("access-control-allow-origin", "*")]
        if request.method == "HEAD":
            return Response(200, headers, b"")
        reader, first = hub.add_flv()
        return Response(200, headers, reader.body(first, self.idle_timeout))
