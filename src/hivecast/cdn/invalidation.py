"""Invalidating stored responses after unsafe requests (RFC 9111 4.4)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def invalidation_targets(method: str, status: int, target_path: str, response_headers: Iterable[tuple[str, str]],
                         authority: str | None) -> list[str]:
    """Paths (with query) to invalidate after a request: the target URI, and the URIs in Location
    and Content-Location when they share the target's origin (to prevent denial of service)."""
    if method.upper() in SAFE_METHODS:
        return []
    if not (200 <= status < 400):
        return []  # 4.4: only non-error status codes invalidate
    out = [target_path]
    for name, value in response_headers:
        if name.lower() not in ("location", "content-location"):
            continue
        parts = urlsplit(value.strip())
        if parts.scheme and parts.scheme not in ("http", "https"):
            continue
        if parts.netloc and (authority is None or parts.netloc.lower() != authority.lower()):
            continue
        if not parts.path.startswith("/"):
            continue
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path not in out:
            out.append(path)
    return out
