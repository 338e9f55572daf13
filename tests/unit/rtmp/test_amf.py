"""AMF0 and AMF3: round trips, known bytes, bounds against bombs, and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtmp import amf0, amf3
from hivecast.rtmp.errors import AmfError

keys = st.text(max_size=8)
scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=20)


def test_amf0_known_bytes() -> None:
    assert amf0.encode(1.0) == b"\x00" + struct.pack(">d", 1.0)
    assert amf0.encode("ab") == b"\x02\x00\x02ab"
    assert amf0.encode(None, True) == b"\x05\x01\x01"
    assert amf0.encode({"a": 1}) == b"\x03\x00\x01a\x00" + struct.pack(">d", 1.0) + b"\x00\x00\x09"
    assert amf0.encode(amf0.EcmaArray(a=1))[:5] == b"\x08\x00\x00\x00\x01"
    assert amf0.encode(amf0.UNDEFINED_VALUE) == b"\x06"


def test_amf0_connect_command_round_trip() -> None:
    obj = {"app": "live", "tcUrl": "rtmp://127.0.0.1/live", "fpad": False, "capabilities": 15.0}
    assert amf0.decode_all(amf0.encode("connect", 1.0, obj)) == ["connect", 1.0, obj]


def test_amf0_long_string_date_reference() -> None:
    s = "x" * 70000
    assert amf0.decode_all(amf0.encode(s)) == [s]
    date = b"\x0b" + struct.pack(">d", 1234.0) + b"\x00\x00"
    assert amf0.decode_all(date) == [1234.0]
    obj_then_ref = b"\x0a\x00\x00\x00\x02" + b"\x03\x00\x01a\x05\x00\x00\x09" + b"\x07\x00\x01"
    first, = amf0.decode_all(obj_then_ref)
    assert first[0] is first[1]


@given(st.lists(values, max_size=5))
@settings(max_examples=200, deadline=None)
def test_amf0_round_trip(vals: list[object]) -> None:
    decoded = amf0.decode_all(amf0.encode(*vals))
    assert decoded == vals


@given(st.lists(st.none() | st.booleans() | st.integers(-(2**28), 2**28 - 1) | st.text(max_size=10)
                | st.lists(st.integers(0, 100), max_size=4), max_size=6))
@settings(max_examples=200, deadline=None)
def test_amf3_round_trip(vals: list[object]) -> None:
    assert amf3.decode_all(amf3.encode(*vals)) == vals


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_amf0_fuzz_never_crashes(data: bytes) -> None:
    try:
        amf0.decode_all(data)
    except AmfError:
        pass


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_amf3_fuzz_never_crashes(data: bytes) -> None:
    try:
        amf3.decode_all(data)
    except AmfError:
        pass


def test_amf0_deep_nesting_bomb_is_refused() -> None:
    bomb = b"\x0a\x00\x00\x00\x01" * 10_000 + b"\x05"
    with pytest.raises(AmfError, match="nesting"):
        amf0.decode_all(bomb)


def test_amf0_huge_counts_are_refused() -> None:
    with pytest.raises(AmfError):
        amf0.decode_all(b"\x0a\xff\xff\xff\xff\x05")
    many = b"\x0a\x00\x01\x00\x00" + b"\x05" * 65536
    with pytest.raises(AmfError, match="more than"):
        amf0.decode_all(many, max_items=1000)


def test_amf3_bombs_are_refused() -> None:
    with pytest.raises(AmfError):
        amf3.decode_all(b"\x09\xff\xff\xff\x7f\x01")
    with pytest.raises(AmfError, match="nesting"):
        amf3.decode_all(b"\x09\x03\x01" * 5000 + b"\x01")


def test_amf0_avmplus_switch() -> None:
    assert amf0.decode_all(b"\x11" + amf3.encode({"a": 1})) == [{"a": 1}]
