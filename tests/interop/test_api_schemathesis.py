"""schemathesis (all checks, authenticated) against a node on SQLite and on PostgreSQL.

The node runs in its own process; schemathesis gets a bearer token of the bootstrap admin.
Bounded by examples and time (60 s of schemathesis per database; HIVECAST_TEST_SCHEMATHESIS_SECONDS
raises it) so the pair stays within the suite's budget."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e._api_support import (
    ADMIN,
    _pg_reachable,
    create_pg_database,
    drop_pg_database,
    spawn_node,
    stop_process,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]
MAX_TIME = int(os.environ.get("HIVECAST_TEST_SCHEMATHESIS_SECONDS", "60"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _schemathesis() -> str:
    exe = Path(sys.executable).parent / "schemathesis"
    if exe.exists():
        return str(exe)
    found = shutil.which("schemathesis") or shutil.which("st")
    if not found:
        pytest.skip("schemathesis is not installed (pip install schemathesis, in the test extra)")
    return found


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_schemathesis_all_checks(backend: str, tmp_path: Path) -> None:
    st = _schemathesis()
    db_name = None
    url = None
    if backend == "postgresql":
        reason = await _pg_reachable()
        if reason:
            pytest.skip(reason)
        db_name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
    port = _free_port()
    proc = await spawn_node(str(tmp_path / "node"), port, url)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as c:
            r = await c.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            token = r.json()["data"]["access_token"]
        st_proc = await asyncio.create_subprocess_exec(
            st, "run", f"{base}/api/v1/openapi.json", "--checks", "all",
            "-H", f"Authorization: Bearer {token}",
            "--max-examples", "15", "--max-time", str(MAX_TIME), "--no-color",
            "--generation-database", "none", "--seed", "1",
            # tus PATCH bodies are application/offset+octet-stream, which schemathesis cannot generate;
            # the upload routes have their own end-to-end tests.
            "--exclude-path-regex", "/upload$",
            cwd=str(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            async with asyncio.timeout(MAX_TIME + 90):
                out, _ = await st_proc.communicate()
        except TimeoutError:
            st_proc.kill()
            await st_proc.wait()
            raise
        text = out.decode(errors="replace")
        assert st_proc.returncode == 0, text[-6000:]
    finally:
        await stop_process(proc)
        if db_name:
            await drop_pg_database(db_name)
