"""Who may publish a live stream: the same rule for every ingest protocol (RTSP, RTMP, ...)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Protocol


class PublishAuthorizer(Protocol):
    async def authorize_publish(self, name: str, key: str | None) -> bool: ...


async def authorize_publish(name: str, key: str | None, *, open_publish: bool, keys: Mapping[str, str],
                            authorizer: PublishAuthorizer | None) -> bool:
    """Open publishing, else a key configured on this node for the stream (or "*"), else the
    authorizer (the REST API's stream keys), else no."""
    if open_publish:
        return True
    expected = keys.get(name, keys.get("*"))
    if expected is not None:
        return key is not None and hmac.compare_digest(expected, key)
    if authorizer is not None:
        return bool(await authorizer.authorize_publish(name, key))
    return False
