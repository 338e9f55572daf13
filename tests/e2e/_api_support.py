"""Shared helpers for the REST API end-to-end tests: a node with a bootstrap admin on SQLite or
on a fresh PostgreSQL database, and HTTP clients logged in as each role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from hivecast.node import Node

ADMIN = ("admin", "adminpass1")
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def _pg_reachable() -> str | None:
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"
    try:
        conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_DSN), timeout=3)
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 not reachable: {type(exc).__name__}"
    await conn.close()
    return None


async def create_pg_database() -> str:
    import asyncpg

    name = "hc_api_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (SQLite in the node's data dir) or the URL of a fresh PostgreSQL database, dropped after."""
    if request.param == "sqlite":
        yield None
        return
    reason = await _pg_reachable()
    if reason:
        pytest.skip(reason)
    name = await create_pg_database()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await drop_pg_database(name)


@dataclass
class Api:
    node: Node
    base: str
    admin: httpx.AsyncClient
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=self.base, headers=headers or {}, timeout=20)
        self.clients.append(c)
        return c

    async def login(self, username: str, password: str) -> dict[str, Any]:
        r = await self.client().post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    async def user(self, role: str, username: str | None = None) -> tuple[httpx.AsyncClient, str]:
        """A fresh user of `role`, logged in: (client, user id)."""
        username = username or f"{role}-{uuid.uuid4().hex[:8]}"
        r = await self.admin.post("/api/v1/users", json={"username": username, "password": "password123",
                                                         "role": role})
        assert r.status_code == 201, r.text
        tokens = await self.login(username, "password123")
        return self.client({"authorization": f"Bearer {tokens['access_token']}"}), r.json()["data"]["id"]

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


async def start_api(node_factory: Any, database_url: str | None = None, *,
                    node_flags: dict[str, Any] | None = None, **api: Any) -> Api:
    settings_api = {"admin_username": ADMIN[0], "admin_password": ADMIN[1], **api}
    flags: dict[str, Any] = {"api": settings_api, **(node_flags or {})}
    if database_url:
        flags["database_url"] = database_url
    node = await node_factory(**flags)
    base = f"http://127.0.0.1:{node.services['http_port']}"
    api_obj = Api(node=node, base=base, admin=httpx.AsyncClient(base_url=base, timeout=20))
    api_obj.clients.append(api_obj.admin)
    tokens = await api_obj.login(*ADMIN)
    api_obj.admin.headers["authorization"] = f"Bearer {tokens['access_token']}"
    return api_obj


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["success"] is False
    assert set(body) == {"success", "error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code, body
    text = r.text.lower()
    for leak in ("traceback", "sqlalchemy", "sqlite", "asyncpg", "exception", 'file "', "pydantic"):
        assert leak not in text, (leak, r.text)
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture
async def api(database_url: str | None, node_factory: Any) -> AsyncIterator[Api]:
    # database_url first: it is set up before the node and dropped after the node stops.
    a = await start_api(node_factory, database_url)
    try:
        yield a
    finally:
        await a.close()


NODE_MAIN = __file__.replace("_api_support.py", "_api_node.py")


async def spawn_node(data_dir: str, port: int, database_url: str | None = None) -> asyncio.subprocess.Process:
    """A node in its own process (so a test can kill it); returns once it serves."""
    import sys

    args = [sys.executable, NODE_MAIN, data_dir, str(port)] + ([database_url] if database_url else [])
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError("node exited before it was ready")
                if line.strip() == b"ready":
                    break
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
