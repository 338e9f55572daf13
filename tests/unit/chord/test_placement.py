"""Where an edge on the ring sends a fill: the rules, and arbitrary header lists."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hivecast.chord.placement import (
    OWNER_HEADER,
    RING_HEADER,
    SOURCE_HEADER,
    Route,
    ask_owner,
    mark_response,
    route,
    without_ring_fields,
)


def test_shareable_gets_look_the_owner_up_and_the_rest_go_to_the_origin() -> None:
    assert route("GET", [("accept", "*/*"), ("via", "1.1 hivecast")]) is Route.LOOKUP
    assert route("HEAD", []) is Route.ORIGIN
    assert route("POST", []) is Route.ORIGIN
    assert route("GET", [("Range", "bytes=0-9")]) is Route.ORIGIN
    assert route("GET", [("authorization", "Bearer x")]) is Route.ORIGIN
    # A fill another edge asked of us as the owner is never forwarded again.
    assert route("GET", [("X-Hivecast-Ring", "http://127.0.0.1:1")]) is Route.ORIGIN


def test_owner_is_asked_only_when_it_is_another_edge() -> None:
    assert ask_owner("http://127.0.0.1:2", "http://127.0.0.1:1")
    assert not ask_owner("http://127.0.0.1:1/", "http://127.0.0.1:1")
    assert not ask_owner(None, "http://127.0.0.1:1")
    assert not ask_owner("", "http://127.0.0.1:1")


def test_ring_fields_stay_inside_the_ring_and_are_replaced_not_repeated() -> None:
    assert without_ring_fields([(RING_HEADER, "x"), ("via", "1.1 a")]) == [("via", "1.1 a")]
    upstream = [("content-type", "video/mp2t"), (OWNER_HEADER, "http://a"), (SOURCE_HEADER, "origin")]
    assert mark_response(upstream, owner="http://a", source="peer") == [
        ("content-type", "video/mp2t"), (OWNER_HEADER, "http://a"), (SOURCE_HEADER, "peer")]
    assert mark_response([], owner=None, source="origin") == [(SOURCE_HEADER, "origin")]


names = st.sampled_from(["x-hivecast-ring", "X-Ring-Owner", "range", "via", "accept", "x-ring-source", "a"]) | st.text(
    max_size=20)
headers = st.lists(st.tuples(names, st.text(max_size=40)), max_size=20)


@given(st.sampled_from(["GET", "HEAD", "POST", "PUT", "x"]), headers)
def test_route_on_any_headers(method: str, fields: list[tuple[str, str]]) -> None:
    decision = route(method, fields)
    marked = any(k.lower() == RING_HEADER for k, _ in fields)
    if marked or method != "GET":
        assert decision is Route.ORIGIN
    assert all(k.lower() != RING_HEADER for k, _ in without_ring_fields(fields))


@given(headers, st.none() | st.text(max_size=30), st.sampled_from(["peer", "origin", "origin-fallback"]))
def test_marked_responses_carry_exactly_one_source(fields: list[tuple[str, str]], owner: str | None,
                                                  source: str) -> None:
    out = mark_response(fields, owner=owner, source=source)
    assert [v for k, v in out if k.lower() == SOURCE_HEADER] == [source]
    assert len([k for k, _ in out if k.lower() == OWNER_HEADER]) == (1 if owner else 0)
