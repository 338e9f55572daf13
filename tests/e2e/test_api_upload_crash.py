"""A node killed (SIGKILL) in the middle of an upload loses nothing it acknowledged, and the
upload resumes from the offset it reports after restarting."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import httpx
import pytest

from tests.e2e._api_support import ADMIN, spawn_node, stop_process

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _login(base: str) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=base, timeout=20) as c:
        r = await c.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    return httpx.AsyncClient(base_url=base, timeout=20,
                             headers={"authorization": f"Bearer {r.json()['data']['access_token']}"})


async def test_killed_mid_upload_keeps_acknowledged_bytes_and_resumes(tmp_path) -> None:
    blob = os.urandom(3 * MiB + 12345)
    digest = hashlib.sha256(blob).hexdigest()
    data_dir = str(tmp_path / "node")
    port = free_port()
    proc = await spawn_node(data_dir, port)
    try:
        c = await _login(f"http://127.0.0.1:{port}")
        r = await c.post("/api/v1/videos", json={"title": "crash", "size": len(blob), "sha256": digest})
        up = r.json()["data"]["upload_url"]
        octet = {"content-type": "application/offset+octet-stream", "tus-resumable": "1.0.0"}
        r = await c.patch(up, content=blob[:MiB], headers={**octet, "upload-offset": "0"})
        assert r.status_code == 204 and r.headers["upload-offset"] == str(MiB)  # acknowledged
        token = c.headers["authorization"]
        await c.aclose()

        # The next chunk is half sent when the server dies.
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"PATCH {up} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {MiB}\r\n"
                f"Content-Length: {MiB}\r\n\r\n").encode()
        writer.write(head + blob[MiB: MiB + MiB // 2])
        await writer.drain()
        proc.kill()
        await proc.wait()
        writer.close()
    finally:
        await stop_process(proc)

    proc = await spawn_node(data_dir, port)
    try:
        c = await _login(f"http://127.0.0.1:{port}")
        octet = {"content-type": "application/offset+octet-stream", "tus-resumable": "1.0.0"}
        offset = int((await c.head(up)).headers["upload-offset"])
        assert MiB <= offset < len(blob)
        # Resume in two requests from wherever the server says it is.
        mid = offset + (len(blob) - offset) // 2
        r = await c.patch(up, content=blob[offset:mid], headers={**octet, "upload-offset": str(offset)})
        assert r.status_code == 204
        r = await c.patch(up, content=blob[mid:], headers={**octet, "upload-offset": str(mid)})
        assert r.status_code == 204 and r.headers["upload-offset"] == str(len(blob))
        video = (await c.get(up.removesuffix("/upload"))).json()["data"]
        assert video["state"] not in ("awaiting_upload", "uploading") and video["sha256"] == digest
        await c.aclose()
    finally:
        await stop_process(proc)
