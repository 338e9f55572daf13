"""Serving byte ranges from a complete or growing stored object (RFC 9110 14)."""

from __future__ import annotations

from hivecast.http.headers import Headers

MAX_RANGE_HEADER = 256


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as (start, end inclusive); None to ignore (serve 200); False if
    unsatisfiable (416). Multiple ranges are answered with the whole object, which RFC 9110 14.2
    allows."""
    if len(header) > MAX_RANGE_HEADER or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignore the Range field
    if start >= size:
        return False
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def if_range_allows(request: Headers, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 13.1.5: If-Range with a strong ETag or an exact Last-Modified date."""
    value = request.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return etag is not None and not etag.startswith("W/") and value == etag
    return last_modified is not None and value == last_modified
