"""What every request handler needs, built once per app: the store, the node's settings and
services, the token secret, the rate limiters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivecast.api.ratelimit import TokenBuckets
from hivecast.api.redis_limits import RedisBuckets
from hivecast.config import Settings

if TYPE_CHECKING:
    from hivecast.api.revocations import RevocationFeed
    from hivecast.node import Node
    from hivecast.store import Store


AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_MAX = 10_000


@dataclass
class ApiContext:
    settings: Settings
    secret: str
    store: Store | None
    node: Node | None
    user_limits: TokenBuckets | RedisBuckets
    ip_limits: TokenBuckets | RedisBuckets
    login_limits: TokenBuckets | RedisBuckets
    upload_dir: Path
    revoked_access: dict[str, float] = field(default_factory=dict)  # jti -> expiry (logout)
    # Resolved credentials (user id or API key hash -> principal, expiry, deadline), kept for a few
    # seconds so a hot client costs no database round trip per request. Any change to a user or a
    # key on this node clears it at once; other nodes hear of it through Redis (api.revocations)
    # when configured, else within AUTH_CACHE_SECONDS.
    auth_cache: dict[str, tuple[Any, float | None, float]] = field(default_factory=dict)
    redis: Any = None  # redis.asyncio client when redis_url is set (shared limits, revocation feed)
    feed: RevocationFeed | None = None

    def cached_principal(self, key: str, now: float) -> Any:
        hit = self.auth_cache.get(key)
        if hit is None:
            return None
        principal, expires_at, deadline = hit
        if deadline < now or (expires_at is not None and expires_at <= time.time()):
            self.auth_cache.pop(key, None)
            return None
        return principal

    def cache_principal(self, key: str, principal: Any, now: float, expires_at: float | None = None) -> None:
        if len(self.auth_cache) >= AUTH_CACHE_MAX:
            self.auth_cache.clear()
        self.auth_cache[key] = (principal, expires_at, now + AUTH_CACHE_SECONDS)

    def forget_credentials(self, *, announce: bool = True) -> None:
        """A user or key changed: drop every cached credential here, and on the other nodes."""
        self.auth_cache.clear()
        if announce and self.feed is not None:
            self.feed.announce({"kind": "forget"})

    def revoke_access(self, jti: str, expires_at: float, *, announce: bool = True) -> None:
        """Refuse this access token from now on (logout), here and on the other nodes."""
        now = time.time()
        for old, exp in list(self.revoked_access.items()):
            if exp < now:
                del self.revoked_access[old]
        # Not capped: a cap would let a logged-out token back in. Logins are rate limited per IP
        # and entries leave when their token expires (access tokens live minutes).
        self.revoked_access[jti] = expires_at
        if announce and self.feed is not None:
            self.feed.announce({"kind": "revoke", "jti": jti, "expires": expires_at})

    def service(self, name: str) -> Any:
        return self.node.services.get(name) if self.node is not None else None

    @classmethod
    def build(cls, settings: Settings, secret: str, store: Store | None, node: Node | None) -> ApiContext:
        api = settings.api
        limits: list[TokenBuckets | RedisBuckets] = [
            TokenBuckets("user", api.rate_limit, api.rate_window),
            TokenBuckets("ip", api.rate_limit_ip, api.rate_window),
            TokenBuckets("login", api.rate_limit_login, api.rate_window),
        ]
        client = None
        if settings.redis_url:  # one limit across every node sharing this Redis
            from redis.asyncio import Redis

            client = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            limits = [RedisBuckets(client, b) for b in limits if isinstance(b, TokenBuckets)]
        return cls(
            settings=settings, secret=secret, store=store, node=node,
            user_limits=limits[0], ip_limits=limits[1], login_limits=limits[2],
            upload_dir=api.upload_dir or settings.data_dir / "uploads", redis=client,
        )
