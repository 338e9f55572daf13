"""RFC 9111 (and RFC 5861, RFC 9213) rule by rule, on the sans-I/O cores."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from hivecast.cdn.cachecontrol import (
    MAX_DELTA,
    parse_delta,
    parse_directives,
    request_directives,
    response_directives,
)
from hivecast.cdn.freshness import (
    current_age,
    freshness_lifetime,
    initial_age,
    judge,
    stale_if_error_allows,
)
from hivecast.cdn.invalidation import invalidation_targets
from hivecast.cdn.ranges import if_range_allows, parse_range
from hivecast.cdn.storability import is_storable
from hivecast.cdn.validation import (
    conditional_headers,
    headers_for_304,
    matches_304,
    not_modified_for_client,
    update_headers,
)
from hivecast.cdn.vary import secondary_key, vary_fields
from hivecast.http.headers import Headers

NOW = 1_700_000_000.0


def date(t: float) -> str:
    return formatdate(t, usegmt=True)


def cc(*values: str, **kw: str):  # type: ignore[no-untyped-def]
    return response_directives([("cache-control", v) for v in values] + [(k.replace("_", "-"), v) for k, v in kw.items()])


def lifetime(status: int, headers: list[tuple[str, str]]) -> float:
    return freshness_lifetime(status, headers, response_directives(headers))


# ---- 5.2 Cache-Control parsing ----
def test_directives_are_case_insensitive_and_quoted_args_unquoted() -> None:
    d = parse_directives(['Max-Age="60", no-cache="Set-Cookie, X-Foo", public'])
    assert d["max-age"] == "60" and d["no-cache"] == "Set-Cookie, X-Foo" and "public" in d


def test_delta_seconds_invalid_and_overflow() -> None:
    assert parse_delta("abc") is None and parse_delta("-1") is None and parse_delta("") is None
    assert parse_delta("99999999999999999999") == MAX_DELTA


def test_duplicate_max_age_is_treated_as_stale() -> None:
    assert lifetime(200, [("cache-control", "max-age=60"), ("cache-control", "max-age=120")]) == 0


# ---- 4.2.1 freshness lifetime ----
def test_s_maxage_wins_over_max_age_for_shared_cache() -> None:
    assert lifetime(200, [("cache-control", "max-age=10, s-maxage=100")]) == 100


def test_max_age_wins_over_expires() -> None:
    h = [("cache-control", "max-age=10"), ("date", date(NOW)), ("expires", date(NOW + 1000))]
    assert lifetime(200, h) == 10


def test_expires_minus_date() -> None:
    assert lifetime(200, [("date", date(NOW)), ("expires", date(NOW + 300))]) == 300


def test_invalid_expires_means_expired() -> None:
    assert lifetime(200, [("date", date(NOW)), ("expires", "0"), ("last-modified", date(NOW - 10_000))]) == 0


def test_heuristic_freshness_is_a_tenth_of_age_since_modification() -> None:
    assert lifetime(200, [("date", date(NOW)), ("last-modified", date(NOW - 1000))]) == pytest.approx(100)


def test_no_heuristic_for_non_heuristic_status() -> None:
    assert lifetime(302, [("date", date(NOW)), ("last-modified", date(NOW - 1000))]) == 0


# ---- 4.2.3 age ----
def test_age_uses_age_header_response_delay_and_resident_time() -> None:
    h = [("date", date(NOW)), ("age", "30")]
    ia = initial_age(h, request_time=NOW, response_time=NOW + 2)
    assert ia == pytest.approx(32)  # corrected_age_value = 30 + 2 > apparent age 2
    assert current_age(ia, NOW + 2, NOW + 12) == pytest.approx(42)


def test_apparent_age_from_date() -> None:
    assert initial_age([("date", date(NOW - 50))], request_time=NOW, response_time=NOW) == pytest.approx(50)


# ---- 4.2 / 5.2.1 reuse decisions ----
def test_fresh_response_is_served() -> None:
    v = judge(lifetime=60, age=10, cc=cc("max-age=60"), req=request_directives([]))
    assert v.fresh and not v.must_validate


def test_stale_response_must_be_validated() -> None:
    v = judge(lifetime=60, age=61, cc=cc("max-age=60"), req=request_directives([]))
    assert not v.fresh and v.must_validate


def test_response_no_cache_always_validates() -> None:
    assert judge(lifetime=60, age=0, cc=cc("no-cache, max-age=60"), req=request_directives([])).must_validate


def test_request_no_cache_and_pragma() -> None:
    assert judge(lifetime=60, age=0, cc=cc("max-age=60"),
                 req=request_directives([("cache-control", "no-cache")])).must_validate
    assert judge(lifetime=60, age=0, cc=cc("max-age=60"), req=request_directives([("pragma", "no-cache")])).must_validate
    # Pragma is ignored when Cache-Control is present (5.4)
    assert judge(lifetime=60, age=0, cc=cc("max-age=60"),
                 req=request_directives([("pragma", "no-cache"), ("cache-control", "max-stale")])).fresh


def test_request_max_age_and_min_fresh() -> None:
    assert not judge(lifetime=60, age=30, cc=cc("max-age=60"), req=request_directives([("cache-control", "max-age=10")])).fresh
    assert not judge(lifetime=60, age=30, cc=cc("max-age=60"), req=request_directives([("cache-control", "min-fresh=40")])).fresh
    assert judge(lifetime=60, age=30, cc=cc("max-age=60"), req=request_directives([("cache-control", "min-fresh=20")])).fresh


def test_request_max_stale_allows_stale_unless_must_revalidate() -> None:
    req = request_directives([("cache-control", "max-stale=100")])
    assert judge(lifetime=60, age=100, cc=cc("max-age=60"), req=req).fresh
    assert not judge(lifetime=60, age=100, cc=cc("max-age=60, must-revalidate"), req=req).fresh
    assert not judge(lifetime=60, age=100, cc=cc("max-age=60, proxy-revalidate"), req=req).fresh
    assert not judge(lifetime=60, age=100, cc=cc("s-maxage=60"), req=req).fresh  # s-maxage implies proxy-revalidate


def test_only_if_cached_parsed() -> None:
    assert request_directives([("cache-control", "only-if-cached")]).only_if_cached


# ---- RFC 5861 ----
def test_stale_while_revalidate_window() -> None:
    c = cc("max-age=60, stale-while-revalidate=30")
    assert judge(lifetime=60, age=80, cc=c, req=request_directives([])).stale_while_revalidate
    assert not judge(lifetime=60, age=100, cc=c, req=request_directives([])).stale_while_revalidate
    assert not judge(lifetime=60, age=80, cc=cc("max-age=60, stale-while-revalidate=30, must-revalidate"),
                     req=request_directives([])).stale_while_revalidate


def test_stale_if_error_window_response_and_request() -> None:
    none = request_directives([])
    assert stale_if_error_allows(lifetime=60, age=100, cc=cc("max-age=60, stale-if-error=60"), req=none)
    assert not stale_if_error_allows(lifetime=60, age=200, cc=cc("max-age=60, stale-if-error=60"), req=none)
    assert not stale_if_error_allows(lifetime=60, age=100, cc=cc("max-age=60"), req=none)
    req = request_directives([("cache-control", "stale-if-error=100")])
    assert stale_if_error_allows(lifetime=60, age=100, cc=cc("max-age=60"), req=req)
    assert not stale_if_error_allows(lifetime=60, age=100, cc=cc("max-age=60, must-revalidate"), req=req)


# ---- 3 storability ----
def store_ok(status: int, headers: list[tuple[str, str]], method: str = "GET", req: list[tuple[str, str]] | None = None,
             auth: bool = False) -> bool:
    ok, _ = is_storable(method, status, headers, response_directives(headers), request_directives(req or []),
                        request_has_authorization=auth)
    return ok


def test_no_store_and_private_are_not_stored() -> None:
    assert not store_ok(200, [("cache-control", "no-store, max-age=60")])
    assert not store_ok(200, [("cache-control", "private, max-age=60")])
    assert store_ok(200, [("cache-control", "max-age=60")])


def test_request_no_store_prevents_storing() -> None:
    assert not store_ok(200, [("cache-control", "max-age=60")], req=[("cache-control", "no-store")])


def test_unsafe_methods_not_stored() -> None:
    assert not store_ok(200, [("cache-control", "max-age=60")], method="POST")


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_heuristically_cacheable_statuses_stored_without_explicit_freshness(status: int) -> None:
    assert store_ok(status, [])


@pytest.mark.parametrize("status", [302, 303, 307, 500, 502, 503])
def test_other_statuses_need_explicit_freshness(status: int) -> None:
    assert not store_ok(status, [])


def test_302_with_max_age_is_stored_but_500_is_not() -> None:
    assert store_ok(302, [("cache-control", "max-age=60")])
    assert not store_ok(500, [("cache-control", "max-age=60")])


def test_partial_content_is_not_stored() -> None:
    assert not store_ok(206, [("cache-control", "max-age=60")])


def test_must_understand_overrides_no_store_for_understood_status() -> None:
    assert store_ok(200, [("cache-control", "must-understand, no-store, max-age=60")])
    assert not store_ok(299, [("cache-control", "must-understand, no-store, max-age=60")])


def test_authorization_needs_public_or_s_maxage() -> None:
    assert not store_ok(200, [("cache-control", "max-age=60")], auth=True)
    assert store_ok(200, [("cache-control", "public, max-age=60")], auth=True)
    assert store_ok(200, [("cache-control", "s-maxage=60")], auth=True)


def test_vary_star_is_not_stored() -> None:
    assert not store_ok(200, [("cache-control", "max-age=60"), ("vary", "*")])


# ---- RFC 9213 CDN-Cache-Control / Surrogate-Control ----
def test_cdn_cache_control_replaces_cache_control_for_the_edge() -> None:
    d = response_directives([("cache-control", "no-store"), ("cdn-cache-control", "max-age=600")])
    assert d.source == "cdn-cache-control" and not d.no_store and d.max_age == 600


def test_surrogate_control_targeted_directive() -> None:
    d = response_directives([("cache-control", "max-age=5"), ("surrogate-control", "max-age=100, no-store;other")],
                            surrogate_target="edge1")
    assert d.max_age == 100 and not d.no_store
    d2 = response_directives([("surrogate-control", "no-store;edge1")], surrogate_target="edge1")
    assert d2.no_store


def test_cdn_cache_control_wins_over_surrogate_control() -> None:
    d = response_directives([("surrogate-control", "max-age=1"), ("cdn-cache-control", "max-age=2")])
    assert d.max_age == 2


# ---- 4.1 Vary ----
def test_vary_secondary_key_normalizes_values() -> None:
    fields = vary_fields([("vary", "Accept-Encoding, accept-language")])
    a = secondary_key(fields, Headers([("accept-encoding", "gzip,  br"), ("accept-language", "EN")]))
    b = secondary_key(fields, Headers([("Accept-Encoding", "br, gzip"), ("Accept-Language", "en")]))
    c = secondary_key(fields, Headers([("accept-encoding", "gzip")]))
    assert a == b and a != c


def test_vary_absent_header_matches_only_absence() -> None:
    fields = ("x-variant",)
    assert secondary_key(fields, Headers([])) != secondary_key(fields, Headers([("x-variant", "")]))


# ---- 4.3 validation ----
def test_conditional_request_carries_both_validators() -> None:
    h = conditional_headers([("etag", '"a"'), ("last-modified", date(NOW))])
    assert ("if-none-match", '"a"') in h and ("if-modified-since", date(NOW)) in h


def test_304_selects_by_strong_etag_then_last_modified() -> None:
    stored = [("etag", '"a"'), ("last-modified", date(NOW))]
    assert matches_304(stored, [("etag", '"a"')])
    assert not matches_304(stored, [("etag", '"b"')])
    assert matches_304(stored, [("last-modified", date(NOW))])
    assert matches_304(stored, [])


def test_304_updates_stored_headers_but_not_framing() -> None:
    stored = [("etag", '"a"'), ("cache-control", "max-age=1"), ("content-type", "text/plain"), ("x-old", "1")]
    new = update_headers(stored, [("cache-control", "max-age=99"), ("content-length", "0"), ("x-new", "2")])
    d = dict(new)
    assert d["cache-control"] == "max-age=99" and d["content-type"] == "text/plain"
    assert d["x-old"] == "1" and d["x-new"] == "2" and "content-length" not in d


def test_client_conditionals() -> None:
    stored = [("etag", '"a"'), ("last-modified", date(NOW))]
    assert not_modified_for_client("GET", Headers([("if-none-match", 'W/"a", "b"')]), stored)
    assert not not_modified_for_client("GET", Headers([("if-none-match", '"b"')]), stored)
    assert not_modified_for_client("GET", Headers([("if-modified-since", date(NOW))]), stored)
    assert not not_modified_for_client("GET", Headers([("if-modified-since", date(NOW - 10))]), stored)
    # If-None-Match takes precedence over If-Modified-Since
    assert not not_modified_for_client("GET", Headers([("if-none-match", '"b"'), ("if-modified-since", date(NOW))]),
                                       stored)
    assert ("etag", '"a"') in headers_for_304([*stored, ("content-type", "x")])


# ---- 4.4 invalidation ----
def test_unsafe_method_invalidates_target_location_and_content_location_same_origin() -> None:
    targets = invalidation_targets("POST", 201, "/a", [("location", "/b"), ("content-location", "http://evil/c")],
                                   "edge.example")
    assert targets == ["/a", "/b"]
    assert invalidation_targets("DELETE", 204, "/a", [], None) == ["/a"]


def test_error_responses_and_safe_methods_do_not_invalidate() -> None:
    assert invalidation_targets("POST", 500, "/a", [], None) == []
    assert invalidation_targets("GET", 200, "/a", [], None) == []


# ---- ranges ----
def test_ranges() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=100-", 100) is False
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_range("items=0-1", 100) is None
    assert if_range_allows(Headers([("if-range", '"a"')]), '"a"', None)
    assert not if_range_allows(Headers([("if-range", '"a"')]), 'W/"a"', None)


def test_date_resolution_does_not_age_a_fresh_response() -> None:
    # Date is truncated to the second; a response 0.9 s into that second is not 0.9 s old.
    assert initial_age([("date", date(NOW))], request_time=NOW + 0.85, response_time=NOW + 0.9) == pytest.approx(0.05, abs=1e-3)
