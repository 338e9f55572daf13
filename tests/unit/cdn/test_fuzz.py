"""Hypothesis fuzzing of the parsers an edge runs on untrusted input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.cdn.cachecontrol import parse_directives, request_directives, response_directives
from hivecast.cdn.dns_router import DnsResponder, parse_ecs
from hivecast.cdn.edge import playlist_uris
from hivecast.cdn.freshness import parse_http_date
from hivecast.cdn.ranges import parse_range
from hivecast.cdn.selection import RegionMap
from hivecast.cdn.vary import secondary_key, vary_fields
from hivecast.http.headers import Headers

text = st.text(max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.lists(text, max_size=5))
def test_cache_control_never_raises(values: list[str]) -> None:
    d = parse_directives(values)
    assert len(d) <= 64
    response_directives([("cache-control", v) for v in values] + [("surrogate-control", v) for v in values])
    request_directives([("cache-control", v) for v in values])


@settings(max_examples=300, deadline=None)
@given(text, st.integers(min_value=0, max_value=10**12))
def test_range_parse_bounds(header: str, size: int) -> None:
    r = parse_range(header, size)
    if isinstance(r, tuple):
        assert 0 <= r[0] <= r[1] < size


@settings(max_examples=200, deadline=None)
@given(text)
def test_dates_and_playlists(value: str) -> None:
    parse_http_date(value)
    assert len(playlist_uris(value, 3)) <= 4


@settings(max_examples=200, deadline=None)
@given(text, text)
def test_vary(vary: str, value: str) -> None:
    fields = vary_fields([("vary", vary)])
    assert len(fields) <= 16
    secondary_key(fields, Headers([(f, value) for f in fields]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_dns_responder_survives_garbage(data: bytes) -> None:
    responder = DnsResponder("cdn.example.", regions=RegionMap.from_config({"10.0.0.0/8": "eu"}))
    responder.answer(data, "127.0.0.1", [{"id": "a", "url": "http://127.0.0.1:1", "healthy": True}])
    parse_ecs(data)
