"""Validation (RFC 9111 4.3): conditional requests upstream, freshening from 304, and 304s to clients."""

from __future__ import annotations

from collections.abc import Iterable

from hivecast.cdn.freshness import parse_http_date
from hivecast.http.headers import Headers

# RFC 9110 7.6.1 hop-by-hop fields: never stored, never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authenticate", "proxy-authorization",
})
# Fields a 304 must not overwrite in the stored response (RFC 9111 3.2: the cache keeps framing).
_NOT_UPDATED = HOP_BY_HOP | {"content-length", "content-range", "x-cache"}


def _get(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def conditional_headers(stored: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Validators to send upstream for a stored response (4.3.1): its ETag and Last-Modified."""
    out: list[tuple[str, str]] = []
    etag = _get(stored, "etag")
    if etag is not None:
        out.append(("if-none-match", etag))
    last_modified = _get(stored, "last-modified")
    if last_modified is not None:
        out.append(("if-modified-since", last_modified))
    return out


def can_validate(stored: list[tuple[str, str]]) -> bool:
    return _get(stored, "etag") is not None or _get(stored, "last-modified") is not None


def matches_304(stored: list[tuple[str, str]], not_modified: list[tuple[str, str]]) -> bool:
    """RFC 9111 4.3.4: does this 304 select the stored response?"""
    new_etag = _get(not_modified, "etag")
    old_etag = _get(stored, "etag")
    if new_etag is not None and not new_etag.startswith("W/"):
        return old_etag == new_etag
    new_lm = _get(not_modified, "last-modified")
    if new_lm is not None:
        return _get(stored, "last-modified") == new_lm
    if new_etag is not None:  # weak validator only: compare weakly
        return old_etag is not None and old_etag.removeprefix("W/") == new_etag.removeprefix("W/")
    # No validators in the 304: it applies to the stored response we validated.
    return True


def update_headers(stored: list[tuple[str, str]], not_modified: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 9111 3.2: fields in the 304 replace those of the stored response."""
    replaced = {k.lower() for k, _ in not_modified if k.lower() not in _NOT_UPDATED}
    kept = [(k, v) for k, v in stored if k.lower() not in replaced]
    return kept + [(k.lower(), v) for k, v in not_modified if k.lower() in replaced]


def _etag_list_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2)."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(",")[:64])


def not_modified_for_client(method: str, request: Headers, stored: list[tuple[str, str]]) -> bool:
    """RFC 9110 13.2.2: should the cache answer a client's conditional GET/HEAD with 304?"""
    if method not in ("GET", "HEAD"):
        return False
    inm = request.get("if-none-match")
    if inm is not None:
        etag = _get(stored, "etag")
        return etag is not None and _etag_list_matches(inm, etag)
    ims = parse_http_date(request.get("if-modified-since"))
    if ims is not None:
        lm = parse_http_date(_get(stored, "last-modified")) or parse_http_date(_get(stored, "date"))
        return lm is not None and lm <= ims
    return False


# RFC 9110 15.4.5: a 304 carries these fields of the 200 it stands for.
_304_FIELDS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary",
                         "last-modified", "cdn-cache-control"})


def headers_for_304(stored: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in stored if k.lower() in _304_FIELDS]
