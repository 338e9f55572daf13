from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.p2p.bencode import BencodeError, decode, decode_prefix, encode


def test_round_trip_and_canonical_form() -> None:
    value = {b"b": [1, -2, b"x"], b"a": {b"k": b""}, b"c": 0}
    data = encode(value)
    assert data == b"d1:ad1:k0:e1:bli1ei-2e1:xe1:ci0ee"
    assert decode(data) == value


def test_str_keys_and_values_encode_as_utf8() -> None:
    assert encode({"é": "ü"}) == "d2:é2:üe".encode()


@pytest.mark.parametrize("bad", [
    b"i01e", b"i-0e", b"ie", b"i-e", b"i1", b"i1.5e", b"03:abc", b"3:ab", b"-1:a", b"d1:bi1e1:ai2ee",
    b"d1:ai1e1:ai2ee", b"di1ei2ee", b"l", b"d", b"x", b"", b"i1ei2e", b"d1:a", b"l" * 100 + b"e" * 100,
    b"4294967296:", b"i" + b"9" * 30 + b"e",
])
def test_strict_decoding_rejects(bad: bytes) -> None:
    with pytest.raises(BencodeError):
        decode(bad)


def test_limits() -> None:
    with pytest.raises(BencodeError, match="limit"):
        decode(b"4:abcd", max_size=3)
    with pytest.raises(BencodeError, match="nesting"):
        decode(b"llllee" + b"ee", max_depth=3)
    assert decode(b"llee", max_depth=2) == [[]]


def test_decode_prefix_returns_end() -> None:
    value, end = decode_prefix(b"d1:ai1eeRAW")
    assert value == {b"a": 1} and end == 8


def test_encode_rejects_unencodable() -> None:
    for bad in (True, 1.5, None, {1: 2}, {"a": 1, b"a": 2}):
        with pytest.raises(BencodeError):
            encode(bad)


values: st.SearchStrategy[Any] = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_fuzz_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_fuzz_garbage_only_raises_bencode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except BencodeError:
        return
    # Whatever decodes is canonical: it re-encodes to the very same bytes.
    assert encode(value) == data


@given(values, st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
@settings(max_examples=300, deadline=None)
def test_fuzz_mutations(value: Any, pos: int, byte: int) -> None:
    data = bytearray(encode(value))
    if data:
        data[pos % len(data)] = byte
    try:
        out = decode(bytes(data))
    except BencodeError:
        return
    assert encode(out) == bytes(data)
