"""The FastAPI application behind /api/v1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from hivecast import __version__

if TYPE_CHECKING:
    from hivecast.node import Node


def create_app(node: Node | None = None) -> FastAPI:
    app = FastAPI(
        title="Hivecast API",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    @app.get("/api/v1", summary="API root")
    async def root() -> dict[str, Any]:
        return {"success": True, "data": {"version": __version__, "role": node.role if node else None},
                "message": "hivecast api"}

    return app
