"""The REST API (FastAPI, through the ASGI hand-off) and the web UI at `/`."""

from __future__ import annotations

from hivecast.api.app import create_app
from hivecast.http import AsgiHandler, AsgiLifespan, Request, Response
from hivecast.node.node import Node

_LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hivecast</title></head>
<body><main><h1>Hivecast</h1><p>Node role: {role}, version {version}.</p>
<ul><li><a href="/api/v1/docs">REST API</a></li><li><a href="/metrics">Metrics</a></li></ul></main></body></html>
"""


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
        from hivecast import __version__

        page = _LANDING.format(role=node.role, version=__version__).encode()

        async def landing(request: Request) -> Response:
            return Response(200, [("content-type", "text/html; charset=utf-8")], page)

        node.router.exact("/", landing)

    async def stop(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.shutdown(timeout=0.5)
