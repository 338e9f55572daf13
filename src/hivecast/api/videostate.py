"""Keeps each video's row in step with the packager and the seeder, from their bus events:
`vod.packaged` makes it ready (with its renditions), `vod.failed` failed, and `torrent.created`
fills in the torrent URL and magnet link from `node.services["torrents"]`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from hivecast.events import Event, Subscription
from hivecast.store import Store, Video

if TYPE_CHECKING:
    from hivecast.node import Node

log = logging.getLogger(__name__)


def renditions_of(files: list[str]) -> list[str]:
    """Rendition directories (`v0`, `a0`, ...) named by the packaged files' paths."""
    return sorted({f.split("/", 1)[0] for f in files if "/" in f and f.endswith((".m3u8", ".mp4", ".m4s"))})


class VideoStateSync:
    name = "video-state"

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    async def start(self, node: Node) -> None:
        store: Store | None = node.services.get("store")
        if store is None:
            return
        self._subs = [node.bus.subscribe("vod.*"), node.bus.subscribe("torrent.created")]
        for sub in self._subs:
            node.spawn(self._pump(node, store, sub), name=f"video-state {sub.pattern}")

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()

    async def _pump(self, node: Node, store: Store, sub: Subscription) -> None:
        async for event in sub:
            try:
                await self.apply(node, store, event)
            except Exception:
                log.exception("could not record %s for video %s", event.topic, event.data.get("id"))

    @staticmethod
    async def apply(node: Node, store: Store, event: Event) -> None:
        video_id = event.data.get("id")
        if not isinstance(video_id, str):
            return
        values: dict[str, Any]
        if event.topic == "vod.packaged":
            values = {"state": "ready", "renditions": renditions_of(list(event.data.get("files") or []))}
        elif event.topic == "vod.failed":
            values = {"state": "failed"}
        elif event.topic == "torrent.created":
            torrents = node.services.get("torrents")
            info = torrents.info(video_id) if torrents is not None else None
            if not info:
                return
            values = {"torrent_url": info.get("torrent_url"), "magnet": info.get("magnet")}
        else:
            return
        async with store.session() as session:
            await session.execute(update(Video).where(Video.id == video_id).values(
                **values, updated_at=datetime.now(UTC), version=Video.version + 1))
            await session.commit()
