"""The REST API (FastAPI, through the ASGI hand-off) and the web UI at `/`."""

from __future__ import annotations

from pathlib import Path

from hivecast.api.app import create_app
from hivecast.http import AsgiHandler, AsgiLifespan, Request, Response, StaticFiles
from hivecast.http.files import file_response
from hivecast.node.node import Node

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

_FALLBACK = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hivecast</title></head>
<body><main><h1>Hivecast</h1><p>The web UI is not built: run <code>npm run build</code> in web/.</p>
<p><a href="/api/v1/docs">REST API</a></p></main></body></html>
"""


def asset_cache_control(path: str) -> str:
    # Vite puts a content hash in every name under assets/, so those never change.
    return "public, max-age=31536000, immutable"


class ApiAndWeb:
    name = "api"

    def __init__(self) -> None:
        self._lifespan: AsgiLifespan | None = None

    async def start(self, node: Node) -> None:
        app = create_app(node)
        self._lifespan = AsgiLifespan(app)
        await self._lifespan.startup()
        handler = AsgiHandler(app, state=self._lifespan.state)
        node.router.prefix("/api/", handler)
        node.router.prefix("/assets/", StaticFiles(STATIC / "assets", cache_control=asset_cache_control))
        index = STATIC / "index.html"

        async def landing(request: Request) -> Response:
            if request.method not in ("GET", "HEAD"):
                return Response(405, [("allow", "GET, HEAD"), ("content-type", "text/plain")], b"method not allowed\n")
            try:
                st = index.stat()
            except OSError:
                return Response(200, [("content-type", "text/html; charset=utf-8")], _FALLBACK)
            # The page names the current hashed assets, so it is revalidated every time.
            return file_response(request, index, st, "no-cache")

        node.router.exact("/", landing)
        node.router.exact("/index.html", landing)

    async def stop(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.shutdown(timeout=0.5)
