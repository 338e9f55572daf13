"""The ASGI hand-off: a FastAPI app answers through our front door."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastRequest
from fastapi.responses import StreamingResponse

from hivecast.http import AsgiHandler, AsgiLifespan, HttpServer, Router


def make_app(events: list[str]) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"id": item_id, "q": q}

    @app.post("/api/echo")
    async def echo(request: FastRequest) -> dict[str, object]:
        body = await request.body()
        return {"size": len(body), "ctype": request.headers.get("content-type")}

    @app.get("/api/stream")
    async def stream() -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"part{i}\n".encode()

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/api/fail")
    async def fail() -> None:
        raise RuntimeError("internal detail")

    return app


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, list[str]]]:
    events: list[str] = []
    app = make_app(events)
    lifespan = AsgiLifespan(app)
    await lifespan.startup()
    router = Router()
    router.prefix("/api/", AsgiHandler(app, state=lifespan.state))
    server = HttpServer(router, host="127.0.0.1", port=0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}", events
    await server.close(grace=0.1)
    await lifespan.shutdown()
    assert events == ["startup", "shutdown"]


async def test_json_route_with_path_and_query(served: tuple[str, list[str]]) -> None:
    base, _ = served
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{base}/api/items/7?q=x%20y")
    assert r.json() == {"id": 7, "q": "x y"}


async def test_request_body_reaches_app(served: tuple[str, list[str]]) -> None:
    base, _ = served
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{base}/api/echo", content=b"z" * 300_000, headers={"content-type": "a/b"})
    assert r.json() == {"size": 300_000, "ctype": "a/b"}


async def test_streaming_response(served: tuple[str, list[str]]) -> None:
    base, _ = served
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{base}/api/stream")
    assert r.text == "part0\npart1\npart2\n"


async def test_validation_and_errors(served: tuple[str, list[str]]) -> None:
    base, _ = served
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/api/items/notanint")).status_code == 422
        assert (await client.get(f"{base}/api/missing")).status_code == 404
        r = await client.get(f"{base}/api/fail")
        assert r.status_code == 500
        assert "internal detail" not in r.text
