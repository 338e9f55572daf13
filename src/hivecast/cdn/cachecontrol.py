"""Cache-Control (RFC 9111 section 5.2), CDN-Cache-Control (RFC 9213) and Surrogate-Control.

A shared edge cache takes its directives from the most specific field present: a targeted field
(`CDN-Cache-Control`, then `Surrogate-Control`) replaces `Cache-Control` entirely for caching
decisions (RFC 9213 section 2.1); `Cache-Control` is still passed downstream unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_DIRECTIVES = 64
MAX_DELTA = 2**31  # RFC 9111 1.2.2: delta-seconds beyond this are treated as 2^31


def parse_delta(value: str | None) -> int | None:
    """delta-seconds (RFC 9111 1.2.2); None when absent or invalid (an invalid value is ignored)."""
    if value is None:
        return None
    value = value.strip().strip('"')
    if not value.isdigit() or not value.isascii():
        return None
    return min(int(value[:12]), MAX_DELTA)


def _split_top_level(value: str) -> list[str]:
    """Split on commas outside quoted strings."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_directives(values: Iterable[str]) -> dict[str, str | None]:
    """Directives of one or more field lines: names lower-cased, first occurrence wins
    (RFC 9111 4.2.1: with duplicates, a cache should treat the response as stale; we keep the
    first and the freshness code treats conflicting duplicates of max-age/s-maxage as 0)."""
    out: dict[str, str | None] = {}
    duplicates: set[str] = set()
    count = 0
    for line in values:
        for part in _split_top_level(line):
            part = part.strip()
            if not part:
                continue
            count += 1
            if count > MAX_DIRECTIVES:
                return out
            name, eq, arg = part.partition("=")
            name = name.strip().lower()
            if not name:
                continue
            argument: str | None = arg.strip() if eq else None
            if argument is not None and len(argument) >= 2 and argument[0] == argument[-1] == '"':
                argument = argument[1:-1]
            if name in out:
                duplicates.add(name)
                continue
            out[name] = argument
    for name in duplicates & {"max-age", "s-maxage"}:
        out[name] = "0"
    return out


@dataclass(slots=True)
class ResponseDirectives:
    """The response directives a shared cache acts on."""

    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False
    no_cache_fields: tuple[str, ...] = ()
    private: bool = False
    private_fields: tuple[str, ...] = ()
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    must_understand: bool = False
    no_transform: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    # Where the directives came from: "cdn-cache-control", "surrogate-control" or "cache-control".
    source: str = "cache-control"
    raw: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_directives(cls, d: dict[str, str | None], source: str = "cache-control") -> ResponseDirectives:
        def fields(name: str) -> tuple[str, ...]:
            arg = d.get(name)
            return tuple(f.strip().lower() for f in arg.split(",") if f.strip()) if arg else ()

        return cls(
            max_age=parse_delta(d.get("max-age")) if "max-age" in d else None,
            s_maxage=parse_delta(d.get("s-maxage")) if "s-maxage" in d else None,
            no_store="no-store" in d,
            # Qualified no-cache (with field names) only forbids reusing those fields; a shared
            # cache may treat it as unqualified (RFC 9111 5.2.2.4), which is what we do.
            no_cache="no-cache" in d,
            no_cache_fields=fields("no-cache"),
            # Qualified private: a shared cache may store the response minus those fields; we
            # take the simpler, allowed route of not storing it at all.
            private="private" in d,
            private_fields=fields("private"),
            public="public" in d,
            must_revalidate="must-revalidate" in d,
            proxy_revalidate="proxy-revalidate" in d,
            must_understand="must-understand" in d,
            no_transform="no-transform" in d,
            immutable="immutable" in d,
            stale_while_revalidate=parse_delta(d.get("stale-while-revalidate")),
            stale_if_error=parse_delta(d.get("stale-if-error")),
            source=source,
            raw=d,
        )


def _surrogate_directives(values: list[str], target: str | None) -> dict[str, str | None]:
    """Surrogate-Control (Edge Architecture 1.0): `max-age=60, no-store; edge1` where a trailing
    `;target` limits a directive to one surrogate. Untargeted directives apply to all."""
    general: list[str] = []
    targeted: list[str] = []
    for line in values:
        for part in _split_top_level(line):
            directive, semi, who = part.partition(";")
            if semi:
                if target is not None and who.strip().lower() == target.lower():
                    targeted.append(directive)
            else:
                general.append(directive)
    d = parse_directives(general)
    d.update(parse_directives(targeted))
    return d


def response_directives(headers: Iterable[tuple[str, str]], *, surrogate_target: str | None = None,
                        honor_targeted: bool = True) -> ResponseDirectives:
    """The directives an edge cache obeys for a response with these headers."""
    cc: list[str] = []
    cdn: list[str] = []
    sur: list[str] = []
    for name, value in headers:
        n = name.lower()
        if n == "cache-control":
            cc.append(value)
        elif n == "cdn-cache-control":
            cdn.append(value)
        elif n == "surrogate-control":
            sur.append(value)
    if honor_targeted and cdn:
        parsed = parse_directives(cdn)
        if parsed:  # RFC 9213 2.1: an invalid (empty) targeted field is ignored
            return ResponseDirectives.from_directives(parsed, "cdn-cache-control")
    if honor_targeted and sur:
        parsed = _surrogate_directives(sur, surrogate_target)
        if parsed:
            return ResponseDirectives.from_directives(parsed, "surrogate-control")
    return ResponseDirectives.from_directives(parse_directives(cc), "cache-control")


@dataclass(slots=True)
class RequestDirectives:
    """Request directives (RFC 9111 5.2.1)."""

    max_age: int | None = None
    max_stale: int | None = None  # MAX_DELTA when given without a value: any staleness
    min_fresh: int | None = None
    no_cache: bool = False
    no_store: bool = False
    only_if_cached: bool = False
    stale_if_error: int | None = None


def request_directives(headers: Iterable[tuple[str, str]]) -> RequestDirectives:
    cc: list[str] = []
    pragma: list[str] = []
    for name, value in headers:
        n = name.lower()
        if n == "cache-control":
            cc.append(value)
        elif n == "pragma":
            pragma.append(value)
    d = parse_directives(cc)
    out = RequestDirectives(
        max_age=parse_delta(d.get("max-age")) if "max-age" in d else None,
        min_fresh=parse_delta(d.get("min-fresh")) if "min-fresh" in d else None,
        no_cache="no-cache" in d,
        no_store="no-store" in d,
        only_if_cached="only-if-cached" in d,
        stale_if_error=parse_delta(d.get("stale-if-error")),
    )
    if "max-stale" in d:
        out.max_stale = MAX_DELTA if d["max-stale"] is None else parse_delta(d["max-stale"])
    # RFC 9111 5.4: Pragma: no-cache counts only when there is no Cache-Control field.
    if not cc and any("no-cache" in p.lower() for p in pragma):
        out.no_cache = True
    return out
