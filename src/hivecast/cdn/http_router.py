"""The HTTP request router: 302 to the best healthy edge for the client and the object."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hivecast.cdn.selection import RegionMap, choose
from hivecast.http.message import Request, Response


class RedirectRouter:
    def __init__(self, edges: Callable[[], Sequence[Mapping[str, Any]]], regions: RegionMap) -> None:
        self.edges = edges
        self.regions = regions

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response.text("405 only GET and HEAD are redirected\n", status=405)
        if request.path == "/healthz":
            return Response.json({"status": "ok", "role": "router"})
        client = (request.headers.get("x-forwarded-for") or request.client[0]).split(",")[0].strip()
        chosen = choose(self.edges(), region=self.regions.region_of(client), key=request.path)
        if not chosen:
            return Response.text("503 no healthy edge\n", status=503, headers=[("cache-control", "no-store")])
        query = f"?{request.query_string}" if request.query_string else ""
        location = str(chosen[0]["url"]).rstrip("/") + request.raw_path + query
        return Response(302, [("location", location), ("cache-control", "no-store")], b"")
