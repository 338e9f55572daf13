"""The FastAPI application behind /api/v1: routers per resource, the envelope, the guard
(rate limits, body limits, content types), CORS, and an OpenAPI 3.1 document listing every
status code each route can return."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.responses import Response

from hivecast import __version__
from hivecast.api.context import ApiContext
from hivecast.api.errors import install_handlers
from hivecast.api.guard import Guard
from hivecast.api.responses import respond
from hivecast.api.revocations import RevocationFeed
from hivecast.api.routers import api_keys, auth, edges, purges, streams, users, videos
from hivecast.api.routers import relays as relays_router
from hivecast.api.routers.common import errors
from hivecast.api.schemas import ApiRoot, Envelope
from hivecast.api.uploads import UploadStore
from hivecast.auth.tokens import load_or_create_secret
from hivecast.config import Settings

if TYPE_CHECKING:
    from hivecast.node import Node
    from hivecast.store import Store

PREFIX = "/api/v1"
def create_app(node: Node | None = None, *, settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or (node.settings if node is not None else Settings.model_validate({}))
    if store is None and node is not None:
        store = node.services.get("store")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(settings.data_dir, settings.auth.jwt_secret)
    ctx = ApiContext.build(settings, secret, store, node)
    if node is not None:
        node.services["api_context"] = ctx

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if ctx.redis is not None:
            # The blocking subscription gets its own client: the shared one has a short read timeout.
            from redis.asyncio import Redis

            feed_client = Redis.from_url(settings.redis_url or "", socket_connect_timeout=0.5)
            ctx.feed = RevocationFeed(feed_client, ctx)
            ctx.feed.start()
        try:
            yield
        finally:
            if ctx.feed is not None:
                await ctx.feed.close()
                with contextlib.suppress(Exception):
                    await ctx.feed.client.aclose()
                ctx.feed = None
            if ctx.redis is not None:
                with contextlib.suppress(Exception):
                    await ctx.redis.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="Hivecast API",
        version=__version__,
        description="Management API of a Hivecast node: users, live streams, videos, edges, purges, API keys. "
                    "Every answer is an envelope: `{success, data, message}` or `{success: false, error}`.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.uploads = UploadStore(ctx.upload_dir)
    install_handlers(app)

    v1 = APIRouter(prefix=PREFIX)

    @v1.get("", response_model=Envelope[ApiRoot], responses=errors(304), summary="API root", tags=["meta"])
    async def root(request: Request) -> Response:
        return respond(request, ApiRoot(version=__version__, role=node.role if node else None),
                       message="hivecast api")

    for module in (auth, users, streams, videos, edges, purges, api_keys):
        v1.include_router(module.router)
    v1.include_router(relays_router.router)
    app.include_router(v1)

    app.add_middleware(Guard, ctx=ctx, openapi=app.openapi)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.api.cors_origins), allow_credentials=False,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "x-api-key", "content-type", "if-match", "if-none-match",
                           "upload-offset", "upload-length", "upload-checksum", "tus-resumable"],
            expose_headers=["etag", "location", "ratelimit", "ratelimit-policy", "retry-after",
                            "upload-offset", "upload-length", "tus-resumable"],
            max_age=600,
        )
    return app
