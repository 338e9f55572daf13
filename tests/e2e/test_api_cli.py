"""The CLI over the API, run as a user would (a subprocess talking HTTP to a node)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest

from tests.e2e._api_support import start_api

pytestmark = pytest.mark.slow


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", *args, env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_cli_streams_keys_users_and_upload(node_factory, tmp_path: Path) -> None:
    api = await start_api(node_factory)
    try:
        token = api.admin.headers["authorization"].split()[1]
        env = {"HC_API": api.base, "HC_TOKEN": token}
        code, out = await _cli("key", "create", "ci", env=env)
        assert code == 0, out
        key = next(w for w in out.split() if w.startswith("hck_"))
        env = {"HC_API": api.base, "HC_API_KEY": key}
        code, out = await _cli("stream", "create", "studio", "--title", "Studio", env=env)
        assert code == 0 and "sk_" in out and "rtsp://" in out, out
        code, out = await _cli("stream", "list", env=env)
        assert code == 0 and "studio" in out and "1 total" in out, out
        code, out = await _cli("user", "create", "bob", "--role", "streamer", "--password", "password123", env=env)
        assert code == 0 and "streamer" in out, out
        code, out = await _cli("user", "create", "bob", "--password", "password123", env=env)
        assert code == 1 and "409" in out, out
        code, out = await _cli("user", "create", "root2", "--admin", "--local", "--password", "password123",
                               "--data-dir", str(api.node.settings.data_dir), env={})
        assert code == 0, out
        assert (await api.client().post("/api/v1/auth/login", json={"username": "root2", "password": "password123"})
                ).status_code == 200
        movie = tmp_path / "clip.mp4"
        movie.write_bytes(os.urandom(9 * 1024 * 1024 + 7))  # two chunks
        code, out = await _cli("video", "upload", str(movie), env=env)
        assert code == 0 and "uploaded" in out, out
        videos = (await api.admin.get("/api/v1/videos")).json()["data"]
        assert videos[0]["sha256"] == hashlib.sha256(movie.read_bytes()).hexdigest()
        code, out = await _cli("stream", "list", env={"HC_API": api.base, "HC_API_KEY": "hck_bad"})
        assert code == 1 and "401" in out
    finally:
        await api.close()
