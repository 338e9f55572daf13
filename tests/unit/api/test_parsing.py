"""Small parsers of the API: API key format, sort specs, service answers from other capabilities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hivecast.api.errors import ApiError
from hivecast.api.responses import envelope_bytes, etag_of, parse_sort
from hivecast.api.security import new_api_key, parse_api_key
from hivecast.api.services import live_info, normalize_edge
from hivecast.store.models import Stream


def test_api_key_round_trip() -> None:
    plain, prefix, digest = new_api_key()
    assert parse_api_key(plain) == prefix and len(digest) == 64
    assert parse_api_key("hck_short_x") is None
    assert parse_api_key("nope") is None
    assert parse_api_key("hck_" + "a" * 300) is None


@given(st.text(max_size=300))
def test_api_key_parser_never_raises(text: str) -> None:
    prefix = parse_api_key(text)
    assert prefix is None or len(prefix) == 12


def test_sort_whitelist() -> None:
    cols = {"name": Stream.name, "created_at": Stream.created_at}
    assert len(parse_sort("name,-created_at", cols, "name")) == 2
    assert len(parse_sort(None, cols, "-created_at")) == 1
    for bad in ["password", "name;drop", "-", "name,name,name,name,name"]:
        try:
            parse_sort(bad, cols, "name")
        except ApiError as exc:
            assert exc.status == 422
        else:
            raise AssertionError(bad)


@given(st.text(max_size=100))
def test_sort_parser_only_raises_api_errors(text: str) -> None:
    try:
        parse_sort(text, {"name": Stream.name}, "name")
    except ApiError as exc:
        assert exc.status == 422


def test_etag_is_stable_and_content_bound() -> None:
    a = envelope_bytes({"x": 1})
    assert etag_of(a) == etag_of(envelope_bytes({"x": 1})) != etag_of(envelope_bytes({"x": 2}))


def test_live_info_tolerates_any_registry() -> None:
    class Obj:
        state = "LIVE"
        readers = [1, 2]
        qos = {"jitter": 0.1}
        tracks = [{"codec": "h264"}]

    class Reg:
        def info(self, name: str) -> object:
            return Obj()

    assert live_info(Reg(), "x") == {"state": "live", "viewers": 2, "qos": {"jitter": 0.1},
                                     "tracks": [{"codec": "h264"}]}
    assert live_info(None, "x")["state"] == "offline"

    class Broken:
        def info(self, name: str) -> object:
            raise RuntimeError("boom")

    assert live_info(Broken(), "x")["state"] == "offline"


@given(st.dictionaries(st.sampled_from(["id", "url", "region", "healthy", "draining", "load", "last_seen"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))))
def test_normalize_edge_never_raises(edge: dict[str, object]) -> None:
    out = normalize_edge(edge)
    assert out is None or set(out) == {"id", "url", "region", "healthy", "draining", "load", "last_seen"}
