"""permessage-deflate: negotiation both ways, codec round trips at every window size, bomb limits."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivecast.ws.deflate import (
    Compressor,
    Decompressor,
    DeflateParams,
    client_accept_response,
    parse_extension_header,
    server_accept_offer,
)
from hivecast.ws.errors import HandshakeError, MessageTooBig


def test_parse_extension_header() -> None:
    got = parse_extension_header(['permessage-deflate; client_max_window_bits, permessage-deflate; '
                                  'server_max_window_bits="10"', "x-other"])
    assert got == [("permessage-deflate", [("client_max_window_bits", None)]),
                   ("permessage-deflate", [("server_max_window_bits", "10")]), ("x-other", [])]


@pytest.mark.parametrize("bad", ["permessage-deflate; ", "a b", "permessage-deflate; x=", 'p; x="a b"'])
def test_malformed_extension_header(bad: str) -> None:
    with pytest.raises(HandshakeError):
        parse_extension_header([bad])


def test_server_accepts_and_declines() -> None:
    ok = server_accept_offer([("client_max_window_bits", None), ("server_max_window_bits", "10")],
                             force_server_no_context_takeover=False)
    assert ok == DeflateParams(server_max_window_bits=10)
    assert ok.header_value() == "permessage-deflate; server_max_window_bits=10"
    forced = server_accept_offer([], force_server_no_context_takeover=True)
    assert forced is not None and forced.server_no_context_takeover
    for bad in ([("server_max_window_bits", "7")], [("server_max_window_bits", "16")],
                [("server_max_window_bits", None)], [("x", None)], [("server_no_context_takeover", "1")],
                [("client_no_context_takeover", None), ("client_no_context_takeover", None)]):
        assert server_accept_offer(bad, force_server_no_context_takeover=False) is None


def test_client_checks_response() -> None:
    p = client_accept_response([("server_no_context_takeover", None), ("client_max_window_bits", "9")])
    assert p.server_no_context_takeover and p.client_max_window_bits == 9
    with pytest.raises(HandshakeError):
        client_accept_response([("bogus", None)])
    with pytest.raises(HandshakeError):
        client_accept_response([("server_max_window_bits", "20")])


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
@pytest.mark.parametrize("no_context", [False, True])
def test_codec_round_trip(bits: int, no_context: bool) -> None:
    comp = Compressor(bits, no_context)
    dec = Decompressor(bits, no_context, 1 << 20)
    for msg in [b"hello " * 100, b"", bytes(range(256)) * 40, b"hello " * 100]:
        assert dec.feed(comp.compress(msg), True) == msg


def test_context_takeover_shrinks_repeats() -> None:
    comp = Compressor(15, False)
    msg = bytes(range(256)) * 4
    first, second = comp.compress(msg), comp.compress(msg)
    assert len(second) < len(first) // 4


def test_zip_bomb_is_stopped_at_the_limit() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(b"\x00" * (50 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(payload) < 100_000
    dec = Decompressor(15, False, 1024 * 1024)
    with pytest.raises(MessageTooBig) as info:
        dec.feed(payload[:-4], True)
    assert info.value.code == 1009


@given(st.lists(st.binary(max_size=2000), max_size=6), st.sampled_from([8, 9, 15]), st.booleans())
def test_codec_fuzz_round_trip(messages: list[bytes], bits: int, no_context: bool) -> None:
    comp = Compressor(bits, no_context)
    dec = Decompressor(bits, no_context, 1 << 20)
    for m in messages:
        assert dec.feed(comp.compress(m), True) == m


@given(st.lists(st.text(alphabet="abc=;, \"\t_-9", max_size=40), max_size=3))
def test_extension_header_fuzz(values: list[str]) -> None:
    try:
        parse_extension_header(values)
    except HandshakeError:
        pass
