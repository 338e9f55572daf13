"""How room events reach every node: in process by default, through Redis pub/sub when configured.

Every event goes through the fan-out, including on the node that produced it, so all nodes apply
events (chat, deletions, moderation, presence) in the same order Redis delivered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Deliver = Callable[[str, dict[str, Any]], None]
CHANNEL_PREFIX = "hivecast:rt:"


class Fanout(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    async def publish(self, room: str, event: dict[str, Any]) -> None: ...
    async def close(self) -> None: ...


class LocalFanout:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, room: str, event: dict[str, Any]) -> None:
        if self._deliver is not None:
            self._deliver(room, event)

    async def close(self) -> None:
        self._deliver = None


class RedisFanout:
    """One Redis connection publishes, one pattern subscription (`hivecast:rt:*`) receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis: Any = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    async def start(self, deliver: Deliver) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.url, socket_connect_timeout=5, health_check_interval=30)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.psubscribe(CHANNEL_PREFIX + "*")
        self._task = asyncio.get_running_loop().create_task(self._listen(deliver), name="realtime-redis")

    async def _listen(self, deliver: Deliver) -> None:
        pubsub = self._pubsub
        while True:
            try:
                msg = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: keep trying, rooms stay local meanwhile
                log.warning("realtime: redis subscription failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg.get("type") != "pmessage":
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else str(msg["channel"])
            try:
                event = json.loads(msg["data"])
            except ValueError:
                continue
            self.received += 1
            try:
                deliver(channel[len(CHANNEL_PREFIX):], event)
            except Exception:
                log.exception("realtime: delivering a redis event failed")

    async def publish(self, room: str, event: dict[str, Any]) -> None:
        await self._redis.publish(CHANNEL_PREFIX + room, json.dumps(event, separators=(",", ":")))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
