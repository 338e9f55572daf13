"""The node component: torrents for packaged videos, a seeder, and the tracker.

On `vod.packaged` it makes a v1 torrent of the video's files (name = video id, so web seeds at
`PUBLIC_URL/vod/` resolve to the node's own `/vod/ID/...` URLs, BEP 19), writes it atomically as
`media/vod/ID/ID.torrent`, registers it with the tracker and seeds it. `node.services["torrents"]`
answers `info(video_id)` for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hivecast.net import AddressInUse
from hivecast.p2p.errors import MetainfoError
from hivecast.p2p.magnet import make_magnet
from hivecast.p2p.metainfo import Metainfo, create_torrent, parse_torrent, read_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent
from hivecast.p2p.tracker.core import AnnounceRequest, TrackerCore, TrackerLimits
from hivecast.p2p.tracker.server import HttpTracker, UdpTracker

if TYPE_CHECKING:
    from hivecast.events import Subscription
    from hivecast.node.node import Node

log = logging.getLogger(__name__)


class TorrentService:
    name = "torrents"

    def __init__(self) -> None:
        self.node: Node | None = None
        self.session: Session | None = None
        self.tracker: TrackerCore | None = None
        self.udp_tracker: UdpTracker | None = None
        self.own: dict[bytes, str] = {}  # info-hash -> video id
        self.videos: dict[str, Metainfo] = {}
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._lock = asyncio.Lock()

    # -- component --
    async def start(self, node: Node) -> None:
        self.node = node
        cfg = node.settings.p2p
        self.tracker = TrackerCore(
            TrackerLimits(interval=cfg.announce_interval, min_interval=min(cfg.min_announce_interval,
                          cfg.announce_interval), peer_ttl=cfg.peer_ttl, max_numwant=cfg.max_numwant),
            allowed=(lambda h: h in self.own) if cfg.tracker_only_own else None,
        )
        if cfg.http_tracker:
            http = HttpTracker(self.tracker)
            node.router.exact("/announce", http.announce)
            node.router.exact("/scrape", http.scrape)
        if cfg.udp_tracker:
            self.udp_tracker = await _bind_fallback(
                lambda port: UdpTracker(self.tracker, node.settings.host, port), cfg.tracker_udp_port, "udp tracker")
            node.services["tracker_udp_port"] = self.udp_tracker.port
        options = SessionOptions(host=node.settings.host, port=cfg.bt_port, upload_slots=cfg.upload_slots,
                                 max_peers_per_torrent=cfg.max_peers_per_torrent)
        self.session = await _bind_fallback(lambda port: Session(_with_port(options, port)), cfg.bt_port, "bittorrent")
        node.services["bt_port"] = self.session.port
        node.services["torrents"] = self
        for path in sorted(node.settings.media_dir.glob("vod/*/*.torrent")):
            video_id = path.parent.name
            if path.stem != video_id:
                continue
            try:
                await self._seed(video_id, read_torrent(path))
            except (MetainfoError, OSError) as exc:
                log.warning("cannot seed %s: %s", path, exc)
        self._sub = node.bus.subscribe("vod.packaged")
        self._tasks.append(asyncio.get_running_loop().create_task(self._consume(), name="torrents-vod"))
        self._tasks.append(asyncio.get_running_loop().create_task(self._reannounce(), name="torrents-tracker"))

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        if self.session is not None:
            await self.session.close()
        if self.udp_tracker is not None:
            self.udp_tracker.close()

    # -- contract: node.services["torrents"] --
    def info(self, video_id: str) -> dict[str, str] | None:
        meta = self.videos.get(video_id)
        if meta is None:
            return None
        base = self.public_url()
        return {
            "torrent_url": f"{base}/vod/{video_id}/{video_id}.torrent",
            "magnet": make_magnet(meta.info.info_hash, name=video_id, trackers=meta.trackers,
                                  web_seeds=list(meta.url_list)),
            "info_hash": meta.info.info_hash.hex(),
        }

    def public_url(self) -> str:
        assert self.node is not None
        cfg = self.node.settings.p2p
        if cfg.public_url:
            return cfg.public_url.rstrip("/")
        host = self.node.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        port = self.node.services.get("http_port", self.node.settings.http_port)
        return f"http://{host}:{port}"

    def announce_urls(self) -> list[str]:
        assert self.node is not None
        base = self.public_url()
        urls = []
        if self.node.settings.p2p.http_tracker:
            urls.append(f"{base}/announce")
        if self.udp_tracker is not None:
            urls.append(f"udp://{urlsplit(base).hostname}:{self.udp_tracker.port}/announce")
        return urls

    async def add_video(self, video_id: str, directory: Path, files: list[str] | None = None) -> Metainfo:
        """Make (or reuse) the torrent of a packaged video and seed it."""
        assert self.node is not None
        if not video_id or "/" in video_id or video_id.startswith("."):
            raise MetainfoError(f"bad video id {video_id!r}")
        async with self._lock:
            torrent_path = directory / f"{video_id}.torrent"
            wanted = sorted(f for f in (files or []) if not f.endswith(".torrent"))
            cfg = self.node.settings.p2p
            seeds = [f"{self.public_url()}/vod/"] if cfg.web_seeds else []
            data = await create_torrent(directory, name=video_id, announce=self.announce_urls(), web_seeds=seeds,
                                        piece_length=cfg.piece_length, files=wanted or None, hybrid=cfg.hybrid)
            tmp = torrent_path.with_suffix(".torrent.tmp")
            await asyncio.to_thread(_write_atomic, tmp, torrent_path, data)
            meta = parse_torrent(data)
            old = self.videos.get(video_id)
            if old is not None and old.info.info_hash != meta.info.info_hash and self.session is not None:
                self.own.pop(old.info.info_hash, None)
                await self.session.remove(old.info.info_hash)
            await self._seed(video_id, meta)
            self.node.bus.publish("torrent.created", {"id": video_id, "info_hash": meta.info.info_hash.hex()})
            return meta

    # -- internals --
    async def _seed(self, video_id: str, meta: Metainfo) -> None:
        assert self.session is not None and self.node is not None
        self.own[meta.info.info_hash] = video_id
        self.videos[video_id] = meta
        if meta.info.info_hash not in self.session.torrents:
            base = self.node.settings.media_dir / "vod"
            await self.session.add(Torrent(info_hash=meta.info.info_hash, base_dir=base, info=meta.info,
                                           seed_only=True, trust_complete=True))
        self._register_seed(meta.info.info_hash)

    def _register_seed(self, info_hash: bytes) -> None:
        """The node's own seeder is in its tracker's swarm without announcing over the network."""
        if self.tracker is None or self.session is None:
            return
        host = urlsplit(self.public_url()).hostname or "127.0.0.1"
        with contextlib.suppress(Exception):
            self.tracker.announce(AnnounceRequest(info_hash=info_hash, peer_id=self.session.peer_id, ip=host,
                                                  port=self.session.port, left=0), time.monotonic())

    async def _consume(self) -> None:
        assert self._sub is not None and self.node is not None
        async for event in self._sub:
            data = event.data
            try:
                video_id = str(data["id"])
                directory = Path(data.get("dir") or self.node.settings.media_dir / "vod" / video_id)
                files = [str(f) for f in data.get("files") or []]
                await self.add_video(video_id, directory, files)
                log.info("torrent ready for video %s", video_id)
            except Exception as exc:
                log.warning("cannot make a torrent for %s: %s", data.get("id"), exc)
                self.node.bus.publish("torrent.failed", {"id": data.get("id"), "error": str(exc)})

    async def _reannounce(self) -> None:
        assert self.node is not None
        period = max(5.0, self.node.settings.p2p.peer_ttl / 3)
        while True:
            await asyncio.sleep(period)
            for info_hash in list(self.own):
                self._register_seed(info_hash)


def _write_atomic(tmp: Path, final: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def _with_port(options: SessionOptions, port: int) -> SessionOptions:
    from dataclasses import replace

    return replace(options, port=port)


async def _bind_fallback(make: Any, port: int, what: str) -> Any:
    """Listen on the configured port; if another process holds it, take any free port and say so."""
    server = make(port)
    try:
        await server.start()
    except AddressInUse:
        if port == 0:
            raise
        log.warning("%s port %d is in use; listening on a free port instead", what, port)
        server = make(0)
        await server.start()
    return server
