"""What every request handler needs, built once per app: the store, the node's settings and
services, the token secret, the rate limiters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivecast.api.ratelimit import TokenBuckets
from hivecast.config import Settings

if TYPE_CHECKING:
    from hivecast.node import Node
    from hivecast.store import Store


@dataclass
class ApiContext:
    settings: Settings
    secret: str
    store: Store | None
    node: Node | None
    user_limits: TokenBuckets
    ip_limits: TokenBuckets
    login_limits: TokenBuckets
    upload_dir: Path
    revoked_access: dict[str, float] = field(default_factory=dict)  # jti -> expiry (logout)

    def service(self, name: str) -> Any:
        return self.node.services.get(name) if self.node is not None else None

    @classmethod
    def build(cls, settings: Settings, secret: str, store: Store | None, node: Node | None) -> ApiContext:
        api = settings.api
        return cls(
            settings=settings, secret=secret, store=store, node=node,
            user_limits=TokenBuckets("user", api.rate_limit, api.rate_window),
            ip_limits=TokenBuckets("ip", api.rate_limit_ip, api.rate_window),
            login_limits=TokenBuckets("login", api.rate_limit_login, api.rate_window),
            upload_dir=api.upload_dir or settings.data_dir / "uploads",
        )
