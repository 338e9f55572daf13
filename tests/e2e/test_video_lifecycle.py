"""A video's whole life through the public API: upload, packaging, ready with playback and torrent."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e._api_support import start_api

pytestmark = pytest.mark.slow


def make_clip(ffmpeg: str, path: Path) -> bytes:
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3",
                    "-f", "lavfi", "-i", "sine=duration=3", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "25", "-c:a", "aac", "-shortest", "-y", str(path)], check=True, timeout=60)
    return path.read_bytes()


async def wait_for(client: httpx.AsyncClient, url: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            data: dict[str, Any] = (await client.get(url)).json()["data"]
            if done(data):
                return data
            await asyncio.sleep(0.2)


async def test_uploaded_video_becomes_ready_with_playback_and_torrent(
        node_factory: Any, ffmpeg_exe: str, tmp_path: Path) -> None:
    api = await start_api(node_factory)
    try:
        blob = make_clip(ffmpeg_exe, tmp_path / "clip.mp4")
        r = await api.admin.post("/api/v1/videos", json={
            "title": "clip", "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(), "filename": "clip.mp4"})
        assert r.status_code == 201
        video = r.json()["data"]
        r = await api.admin.patch(video["upload_url"], content=blob, headers={
            "content-type": "application/offset+octet-stream", "tus-resumable": "1.0.0", "upload-offset": "0"})
        assert r.status_code == 204
        url = f"/api/v1/videos/{video['id']}"
        ready = await wait_for(api.admin, url, lambda v: v["state"] in ("ready", "failed"))
        assert ready["state"] == "ready", ready
        assert ready["renditions"]
        playlist = await api.admin.get(ready["playback_urls"]["hls"])
        assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U")
        seeded = await wait_for(api.admin, url, lambda v: v["magnet"] is not None)
        assert seeded["magnet"].startswith("magnet:?xt=urn:btih:")
        torrent = await api.admin.get(urlsplit(seeded["torrent_url"]).path)
        assert torrent.status_code == 200 and torrent.content.startswith(b"d")
    finally:
        await api.close()
