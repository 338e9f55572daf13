"""Credential changes told to every node sharing Redis, so their short credential caches and
logout lists agree at once instead of after AUTH_CACHE_SECONDS (or, for a logged-out access
token, after its expiry).

Without Redis each node keeps its own view: other nodes then catch up within the cache's few
seconds, except for logouts, which only the node that took them knows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivecast.api.context import ApiContext

log = logging.getLogger(__name__)

CHANNEL = "hivecast:api:credentials"
_MAX_MESSAGE = 4096


def apply(ctx: ApiContext, message: dict[str, Any]) -> bool:
    """Act on one message from another node; False when it is not one we understand."""
    kind = message.get("kind")
    if kind == "forget":
        ctx.forget_credentials(announce=False)
        return True
    if kind == "revoke":
        jti, expires = message.get("jti"), message.get("expires")
        if isinstance(jti, str) and 0 < len(jti) <= 128 and isinstance(expires, (int, float)):
            ctx.revoke_access(jti, float(expires), announce=False)
            return True
    return False


class RevocationFeed:
    """Publishes this node's credential changes and applies the other nodes' ones."""

    def __init__(self, client: Any, ctx: ApiContext) -> None:
        self.client = client
        self.ctx = ctx
        self.origin = secrets.token_hex(8)  # our own messages come back too: skip them
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    def announce(self, message: dict[str, Any]) -> None:
        """Fire and forget: the change is already in force here; other nodes are told as soon as
        Redis takes it (and, when Redis is down, they catch up when their cache entries expire)."""
        task = asyncio.get_running_loop().create_task(self._send({**message, "from": self.origin}))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self.client.publish(CHANNEL, json.dumps(message))
        except Exception as exc:
            log.warning("could not tell other nodes of a credential change: %s", exc)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="api revocations")

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.ready.set()
                delay = 0.5
                async for item in pubsub.listen():
                    self._receive(item.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                # Changes missed while unsubscribed: the cache forgets them within seconds anyway.
                self.ctx.forget_credentials(announce=False)
                log.warning("credential revocation feed lost Redis (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _receive(self, raw: Any) -> None:
        if not isinstance(raw, (bytes, str)) or len(raw) > _MAX_MESSAGE:
            return
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("from") != self.origin and not apply(self.ctx, message):
            log.debug("ignored credential message %r", message.get("kind"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=1.0)
