"""The command line: `hivecast edge --workers N` shares one port between processes, and the
router process answers HTTP with 302s to healthy edges."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hivecast.cdn.http_router import RedirectRouter
from hivecast.cdn.selection import RegionMap
from hivecast.http import HttpServer
from tests.conftest import free_port
from tests.e2e.cdn_support import ScriptedOrigin, running_origin, until


@pytest.fixture
async def origin() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o



async def wait_up(url: str, within: float = 20.0) -> None:
    async with asyncio.timeout(within), httpx.AsyncClient(timeout=1.0) as c:
        while True:
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_edge_workers_share_the_port(origin: ScriptedOrigin, tmp_path: Path) -> None:
    origin.set("/w.ts", headers=[("cache-control", "max-age=60")], body=b"w" * 1000)
    port = free_port()
    env = {**os.environ, "HIVECAST_LOG_LEVEL": "warning"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", "edge", "--origin", origin.url, "--host", "127.0.0.1",
        "--http-port", str(port), "--data-dir", str(tmp_path / "edge"), "--workers", "2", "--cache-size", "10M",
        env=env)
    try:
        await wait_up(f"http://127.0.0.1:{port}/healthz")
        await until(lambda: not (len(list((tmp_path / "edge" / "cache").glob("w*"))) < 2), within=20)
        async with httpx.AsyncClient(timeout=5.0, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            bodies = [(await c.get(f"http://127.0.0.1:{port}/w.ts")).content for _ in range(20)]
        assert all(b == b"w" * 1000 for b in bodies)
        # each worker has its own cache, so at most one origin request per worker
        assert 1 <= origin.count("/w.ts") <= 2
    finally:
        proc.terminate()
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    out = await asyncio.to_thread(subprocess.run, ["pgrep", "-f", f"--http-port {port}"], capture_output=True,
                                  text=True)
    assert out.stdout.strip() == ""  # the extra worker stopped with the first


async def test_http_redirect_router() -> None:
    edges = [
        {"id": "eu1", "url": "http://127.0.0.1:1111", "region": "eu", "healthy": True, "draining": False},
        {"id": "eu2", "url": "http://127.0.0.1:2222", "region": "eu", "healthy": True, "draining": False},
        {"id": "us1", "url": "http://127.0.0.1:3333", "region": "us", "healthy": True, "draining": False},
    ]
    router = RedirectRouter(lambda: edges, RegionMap.from_config({"127.0.0.0/8": "eu"}))
    server = HttpServer(router, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=5.0) as c:
            base = f"http://127.0.0.1:{server.port}"
            seen = set()
            for i in range(30):
                r = await c.get(f"{base}/vod/x/seg{i}.ts?t=1")
                assert r.status_code == 302
                seen.add(r.headers["location"].split("/vod/")[0])
                # consistent hashing: the same object always goes to the same edge
                again = await c.get(f"{base}/vod/x/seg{i}.ts?t=1")
                assert again.headers["location"] == r.headers["location"] and r.headers["location"].endswith("?t=1")
            assert seen == {"http://127.0.0.1:1111", "http://127.0.0.1:2222"}  # only the client's region
            r = await c.get(f"{base}/vod/a.ts", headers={"x-forwarded-for": "192.0.2.1"})
            assert r.status_code == 302  # no region for this network: any healthy edge
            for e in edges:
                e["healthy"] = False
            assert (await c.get(f"{base}/vod/a.ts")).status_code == 503
    finally:
        await server.close(grace=0.1)
