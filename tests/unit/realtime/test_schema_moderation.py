"""Client message parsing (bounded, fuzzed) and the pure moderation state."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivecast.realtime import schema
from hivecast.realtime.moderation import RoomModeration, TokenBucket


def parse(obj: object, max_length: int = 20) -> schema.ClientMessage:
    return schema.parse_client_message(json.dumps(obj), max_length=max_length)


def test_valid_messages() -> None:
    assert parse({"type": "chat", "text": "  hi  "}) == schema.Chat("hi")
    assert parse({"type": "danmaku", "text": "wow", "media_time": 12.5, "color": "#FF0000", "mode": "top"}) == \
        schema.Danmaku("wow", 12.5, "#ff0000", "top")
    assert parse({"type": "auth", "token": "t"}) == schema.Auth("t")
    assert parse({"type": "mute", "user": "u1", "seconds": 60}) == schema.Moderate("mute", "u1", 60.0)
    assert parse({"type": "ban", "user": "u1"}) == schema.Moderate("ban", "u1", None)
    assert parse({"type": "delete", "id": "abc"}) == schema.Delete("abc")
    assert parse({"type": "ping"}) == schema.ClientPing()


@pytest.mark.parametrize(("obj", "code"), [
    ({"type": "chat", "text": "x" * 21}, "too_long"),
    ({"type": "chat", "text": "   "}, "bad_request"),
    ({"type": "chat"}, "bad_request"),
    ({"type": "danmaku", "text": "a", "media_time": -1}, "bad_request"),
    ({"type": "danmaku", "text": "a", "media_time": True}, "bad_request"),
    ({"type": "danmaku", "text": "a", "media_time": 1, "color": "red"}, "bad_request"),
    ({"type": "danmaku", "text": "a", "media_time": 1, "mode": "spin"}, "bad_request"),
    ({"type": "mute", "user": "u", "seconds": 0}, "bad_request"),
    ({"type": "nope"}, "bad_request"),
    ([1, 2], "bad_request"),
])
def test_invalid_messages(obj: object, code: str) -> None:
    with pytest.raises(schema.BadMessage) as info:
        parse(obj)
    assert info.value.code == code


def test_binary_and_non_json_are_refused() -> None:
    for raw in (b"{}", "not json", "[" * 100_000):
        with pytest.raises(schema.BadMessage):
            schema.parse_client_message(raw, max_length=10)


@given(st.one_of(st.text(max_size=200), st.dictionaries(st.sampled_from(["type", "text", "media_time", "user",
                                                                          "seconds", "color", "mode", "token", "id"]),
                                                         st.one_of(st.text(max_size=30), st.floats(), st.integers(),
                                                                   st.booleans(), st.none()), max_size=6)))
def test_parser_fuzz(obj: object) -> None:
    raw = obj if isinstance(obj, str) else json.dumps(obj)
    try:
        schema.parse_client_message(raw, max_length=50)
    except schema.BadMessage:
        pass


def test_token_bucket_refills() -> None:
    b = TokenBucket(3, 3.0)
    assert [b.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.allow(1.01)
    assert not b.allow(1.02)


def test_mute_ban_and_expiry() -> None:
    m = RoomModeration(5, 10.0)
    m.apply("mute", "u", 100.0)
    assert m.is_muted("u", 50.0) and not m.is_muted("u", 100.0)
    m.apply("mute", "v", None)
    assert m.is_muted("v", 1e12)
    m.apply("unmute", "v", None)
    assert not m.is_muted("v", 0)
    m.apply("ban", "w", None)
    assert "w" in m.banned
    m.apply("unban", "w", None)
    assert "w" not in m.banned
