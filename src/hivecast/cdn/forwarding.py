"""Which request and response fields cross the proxy (RFC 9110 7.6)."""

from __future__ import annotations

from collections.abc import Iterable

from hivecast.cdn.validation import HOP_BY_HOP
from hivecast.http.message import Request

# The cache makes its own conditional and range requests upstream.
_CACHE_OWNED = frozenset({"if-none-match", "if-modified-since", "if-range", "range", "if-match",
                          "if-unmodified-since", "host", "content-length"})


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            named.update(t.strip().lower() for t in v.split(",") if t.strip())
    return named


def upstream_headers(request: Request, *, for_cache: bool, via: str) -> list[tuple[str, str]]:
    drop = HOP_BY_HOP | _connection_named(request.headers)
    drop = drop | (_CACHE_OWNED if for_cache else {"host", "content-length"})
    out = [(k, v) for k, v in request.headers if k not in drop]
    forwarded_for = request.headers.get("x-forwarded-for")
    client = request.client[0]
    out = [(k, v) for k, v in out if k != "x-forwarded-for"]
    out.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    previous_via = request.headers.get("via")
    out = [(k, v) for k, v in out if k != "via"]
    out.append(("via", f"{previous_via}, {via}" if previous_via else via))
    return out


def downstream_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Response fields to store and send on: hop-by-hop and framing fields removed."""
    drop = HOP_BY_HOP | _connection_named(headers) | {"content-length", "x-cache", "age"}
    return [(k, v) for k, v in headers if k.lower() not in drop]
