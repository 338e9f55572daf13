"""May a shared cache store this response? (RFC 9111 section 3.)"""

from __future__ import annotations

from hivecast.cdn.cachecontrol import RequestDirectives, ResponseDirectives
from hivecast.cdn.freshness import HEURISTIC_STATUSES, has_explicit_expiration

# Status codes whose meaning this cache understands (needed for must-understand, 5.2.2.3).
UNDERSTOOD_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501})
# Statuses we store at all: final, understood. 206 is stored only when we can combine ranges,
# which we do not: we fetch whole objects upstream and cut ranges ourselves.
STORABLE_STATUSES = UNDERSTOOD_STATUSES - {206}


def is_storable(method: str, status: int, headers: list[tuple[str, str]], cc: ResponseDirectives,
                req: RequestDirectives, *, request_has_authorization: bool = False) -> tuple[bool, str]:
    """(storable, reason). Implements the list in RFC 9111 3, for a shared cache."""
    if method not in ("GET", "HEAD"):
        return False, "method not cacheable"
    if status < 200 or status >= 600:
        return False, "non-final status"
    if cc.must_understand:
        # 5.2.2.3: with must-understand, store only statuses we understand; it overrides no-store.
        if status not in UNDERSTOOD_STATUSES:
            return False, "must-understand: status not understood"
    elif cc.no_store:
        return False, "no-store"
    if req.no_store:
        return False, "request no-store"
    if status not in STORABLE_STATUSES:
        return False, f"status {status} not stored"
    if cc.private:
        return False, "private"
    if request_has_authorization and not (cc.public or cc.s_maxage is not None or cc.must_revalidate):
        return False, "authorization without public/s-maxage/must-revalidate (3.5)"
    for name, _ in headers:
        if name.lower() == "vary" and _ == "*":
            return False, "vary: *"
    if (has_explicit_expiration(headers, cc) or cc.public or status in HEURISTIC_STATUSES
            or cc.no_cache):
        return True, "storable"
    return False, "no explicit freshness and status not heuristically cacheable"
