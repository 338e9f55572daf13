"""Freshness and age (RFC 9111 section 4.2) and the RFC 5861 stale extensions, with `now` passed in."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from hivecast.cdn.cachecontrol import MAX_DELTA, RequestDirectives, ResponseDirectives, parse_delta

# RFC 9110 15.1 / RFC 9111 4.2.2: statuses a cache may give heuristic freshness.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1
HEURISTIC_MAX = 86_400.0


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date as a POSIX timestamp; None if absent or unparsable."""
    if not value or len(value) > 64:
        return None
    try:
        dt = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def freshness_lifetime(status: int, headers: list[tuple[str, str]], cc: ResponseDirectives, *,
                       shared: bool = True, heuristic_fraction: float = HEURISTIC_FRACTION,
                       heuristic_max: float = HEURISTIC_MAX) -> float:
    """RFC 9111 4.2.1: s-maxage (shared caches), then max-age, then Expires - Date, then heuristic."""
    if shared and cc.s_maxage is not None:
        return float(cc.s_maxage)
    if cc.max_age is not None:
        return float(cc.max_age)
    expires_raw = _first(headers, "expires")
    date = parse_http_date(_first(headers, "date"))
    if expires_raw is not None:
        expires = parse_http_date(expires_raw)
        if expires is None:
            return 0.0  # 5.3: an invalid Expires (e.g. "0") means already expired
        if date is None:
            return 0.0
        return max(0.0, expires - date)
    # 4.2.2: heuristic freshness only without explicit expiration, for heuristically cacheable
    # statuses or responses marked public.
    if status in HEURISTIC_STATUSES or cc.public:
        last_modified = parse_http_date(_first(headers, "last-modified"))
        if last_modified is not None and date is not None and date > last_modified:
            return min(heuristic_max, (date - last_modified) * heuristic_fraction)
    return 0.0


def has_explicit_expiration(headers: list[tuple[str, str]], cc: ResponseDirectives) -> bool:
    return cc.s_maxage is not None or cc.max_age is not None or _first(headers, "expires") is not None


def initial_age(headers: list[tuple[str, str]], request_time: float, response_time: float) -> float:
    """RFC 9111 4.2.3 corrected_initial_age."""
    age_value = parse_delta(_first(headers, "age")) or 0
    date = parse_http_date(_first(headers, "date"))
    # HTTP-date has one-second resolution (the origin truncates): compare at that resolution, or
    # every response would look up to a second old on arrival, and max-age=1 playlists would be
    # stale almost at once.
    apparent_age = max(0.0, math.floor(response_time) - date) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = age_value + response_delay
    return max(apparent_age, corrected_age_value)


def current_age(corrected_initial_age: float, response_time: float, now: float) -> float:
    """RFC 9111 4.2.3 current_age = corrected_initial_age + resident_time."""
    return corrected_initial_age + max(0.0, now - response_time)


def age_header(age: float) -> str:
    """The Age value we send: whole seconds, capped (RFC 9111 5.1)."""
    return str(min(int(age), MAX_DELTA))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a stored response may be used for right now."""

    fresh: bool            # usable without contacting the origin
    age: float
    lifetime: float
    stale_while_revalidate: bool  # stale, but may be served while a refresh runs (RFC 5861 3)
    must_validate: bool    # stale or no-cache: validate before use


def judge(*, lifetime: float, age: float, cc: ResponseDirectives, req: RequestDirectives,
          shared: bool = True) -> Verdict:
    """RFC 9111 4 and 4.2.4: may a stored response satisfy this request without validation?"""
    staleness = age - lifetime
    fresh = staleness < 0
    if cc.no_cache or req.no_cache:
        # 5.2.2.4 / 5.2.1.4: always validate.
        return Verdict(False, age, lifetime, False, True)
    if fresh:
        if req.max_age is not None and age > req.max_age:
            return Verdict(False, age, lifetime, False, True)
        if req.min_fresh is not None and lifetime - age < req.min_fresh:
            return Verdict(False, age, lifetime, False, True)
        return Verdict(True, age, lifetime, False, False)
    # Stale from here on.
    forbids_stale = cc.must_revalidate or (shared and (cc.proxy_revalidate or cc.s_maxage is not None))
    if not forbids_stale and req.max_stale is not None and staleness <= req.max_stale and req.max_age is None:
        return Verdict(True, age, lifetime, False, False)
    swr = (not forbids_stale and cc.stale_while_revalidate is not None
           and staleness <= cc.stale_while_revalidate)
    return Verdict(False, age, lifetime, swr, True)


def stale_if_error_allows(*, lifetime: float, age: float, cc: ResponseDirectives,
                          req: RequestDirectives, shared: bool = True) -> bool:
    """RFC 5861 4: may a stale response be served because the origin failed?

    The response's own stale-if-error applies "regardless of other freshness information";
    a request's stale-if-error cannot override must-revalidate (and, for a shared cache,
    proxy-revalidate or s-maxage), RFC 9111 4.2.4."""
    staleness = age - lifetime
    if cc.stale_if_error is not None and staleness <= cc.stale_if_error:
        return True
    if req.stale_if_error is None:
        return False
    if cc.must_revalidate or cc.no_cache or (shared and (cc.proxy_revalidate or cc.s_maxage is not None)):
        return False
    return staleness <= req.stale_if_error
