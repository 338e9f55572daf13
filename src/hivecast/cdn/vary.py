"""Secondary cache keys from Vary (RFC 9111 4.1), with normalized request header values.

Two requests select the same stored variant when each header named by Vary normalizes to the
same value: whitespace collapsed, list members split on commas, case folded where the field is
case-insensitive, and Accept-Encoding reduced to the codings a cache can tell apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from hivecast.http.headers import Headers

MAX_VARY_FIELDS = 16
_CASE_INSENSITIVE = frozenset({"accept-encoding", "accept-language", "accept", "origin", "accept-charset"})


def vary_fields(headers: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The sorted, lower-cased field names a response varies on ("*" included if present)."""
    names: set[str] = set()
    for k, v in headers:
        if k.lower() == "vary":
            names.update(n.strip().lower() for n in v.split(",") if n.strip())
    return tuple(sorted(names)[:MAX_VARY_FIELDS])


def normalize(name: str, values: list[str]) -> str:
    joined = ",".join(values)
    members = [" ".join(m.split()) for m in joined.split(",")]
    members = [m for m in members if m]
    if name in _CASE_INSENSITIVE:
        members = [m.lower() for m in members]
    if name == "accept-encoding":
        # Order and q=1 parameters do not change which representation is chosen.
        members = sorted(m.replace(";q=1.0", "").replace(";q=1", "").replace(" ", "") for m in members)
    return ",".join(members)


def secondary_key(fields: tuple[str, ...], request_headers: Headers) -> tuple[tuple[str, str], ...]:
    """The request's normalized values of the Vary fields; an absent field matches only absence."""
    return tuple((f, normalize(f, request_headers.get_all(f)) if f in request_headers else "\x00")
                 for f in fields)
