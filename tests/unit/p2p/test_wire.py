from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.p2p import bencode
from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.errors import PeerProtocolError
from hivecast.p2p.wire import messages as m
from hivecast.p2p.wire.protocol import PeerWire, WireLimits

IH = b"i" * 20


def pair(num_pieces: int = 10, *, fast: bool = True, limits: WireLimits | None = None) -> tuple[PeerWire, PeerWire]:
    a = PeerWire(info_hash=IH, peer_id=b"A" * 20, num_pieces=num_pieces, fast=fast, limits=limits)
    b = PeerWire(info_hash=IH, peer_id=b"B" * 20, num_pieces=num_pieces, fast=fast, limits=limits)
    a.send_handshake()
    b.send_handshake()
    got_b = pump(a, b)
    got_a = pump(b, a)
    assert isinstance(got_a[0], m.Handshake) and isinstance(got_b[0], m.Handshake)
    return a, b


def pump(src: PeerWire, dst: PeerWire) -> list[object]:
    dst.receive_data(b"".join(src.data_to_send()))
    return dst.events()


def msg(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def test_handshake_negotiates_extensions() -> None:
    a, _b = pair(fast=True)
    assert a.fast and a.extended and a.remote_peer_id == b"B" * 20
    c = PeerWire(info_hash=IH, peer_id=b"C" * 20, num_pieces=1, fast=False, extended=False)
    c.receive_data(m.handshake(IH, b"D" * 20, m.reserved_bytes()))
    assert not c.fast and not c.extended


def test_handshake_for_other_torrent_and_garbage() -> None:
    w = PeerWire(info_hash=IH, peer_id=b"A" * 20, num_pieces=1)
    with pytest.raises(PeerProtocolError):
        w.receive_data(m.handshake(b"x" * 20, b"B" * 20, bytes(8)))
    w = PeerWire(info_hash=IH, peer_id=b"A" * 20, num_pieces=1)
    with pytest.raises(PeerProtocolError):
        w.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_state_messages_and_requests_byte_by_byte() -> None:
    a, b = pair()
    b.unchoke()
    pump(b, a)
    bf = Bitfield(10)
    bf.add(3)
    a.send_bitfield(bf)
    a.unchoke()
    a.interested(True)
    a.have(4)
    a.request(3, 0, 16384)
    data = b"".join(a.data_to_send())
    for i in range(len(data)):  # split anywhere
        b.receive_data(data[i : i + 1])
    evs = b.events()
    assert [type(e) for e in evs] == [m.BitfieldMsg, m.Unchoke, m.Interested, m.Have, m.Request]
    assert b.peer_has is not None and 3 in b.peer_has and 4 in b.peer_has
    assert not b.peer_choking and b.peer_interested


def test_request_served_and_cancel() -> None:
    a, b = pair()
    b.unchoke()
    pump(b, a)
    a.request(1, 0, 100)
    a.request(1, 100, 100)
    a.cancel(1, 100, 100)
    evs = pump(a, b)
    assert m.Request(1, 0, 100) in evs and m.Cancel(1, 100, 100) in evs
    assert b.piece(1, 0, b"x" * 100)
    assert not b.piece(1, 100, b"y" * 100)  # cancelled: not sent
    got = pump(b, a)
    assert got == [m.Piece(1, 0, b"x" * 100)]


def test_choked_requests_are_rejected_with_fast() -> None:
    a, b = pair(fast=True)
    a.request(1, 0, 100)
    assert pump(a, b) == []
    assert pump(b, a) == [m.Reject(1, 0, 100)]


@pytest.mark.parametrize("raw", [
    msg(m.HAVE, struct.pack(">I", 10)),  # index out of range
    msg(m.HAVE, b"\0\0\0"),  # short
    msg(m.REQUEST, struct.pack(">III", 0, 0, 1 << 20)),  # oversized block
    msg(m.REQUEST, struct.pack(">III", 0, 0, 0)),
    msg(m.BITFIELD, b"\xff\xff"),  # spare bits set (10 pieces)
    msg(m.BITFIELD, b"\xff"),  # wrong length
    msg(m.CHOKE, b"x"),
    msg(m.PIECE, b"\0\0\0"),
    struct.pack(">I", 2_000_000),  # over the length limit
])
def test_malformed_messages_raise(raw: bytes) -> None:
    _, b = pair()
    with pytest.raises(PeerProtocolError):
        b.receive_data(raw)


def test_bitfield_only_first_and_fast_needs_negotiation() -> None:
    _, b = pair()
    b.receive_data(msg(m.INTERESTED))
    with pytest.raises(PeerProtocolError):
        b.receive_data(msg(m.BITFIELD, b"\x80\x00"))
    _, c = pair(fast=False)
    with pytest.raises(PeerProtocolError):
        c.receive_data(msg(m.HAVE_ALL))


def test_request_flood_is_dropped() -> None:
    a, b = pair(fast=False, limits=WireLimits(max_peer_requests=5))
    b.unchoke()
    pump(b, a)
    for i in range(5):
        a.request(0, i * 16384, 16384)
    pump(a, b)
    a.request(0, 5 * 16384, 16384)
    with pytest.raises(PeerProtocolError, match="flood"):
        pump(a, b)


def test_extension_handshake_metadata_and_pex() -> None:
    a, b = pair()
    a.ext_handshake(metadata_size=40000, listen_port=6881)
    b.ext_handshake(metadata_size=None, listen_port=6882)
    (hs,) = pump(a, b)
    assert isinstance(hs, m.ExtHandshake) and hs.metadata_size == 40000 and hs.listen_port == 6881
    pump(b, a)
    assert b.metadata_request(2)
    assert pump(b, a) == [m.MetadataRequest(2)]
    a.metadata_data(2, 40000, b"z" * 7232)
    assert pump(a, b) == [m.MetadataData(2, 40000, b"z" * 7232)]
    a.metadata_reject(0)
    assert pump(a, b) == [m.MetadataReject(0)]
    assert a.pex([("10.0.0.1", 1000), ("::1", 2000)], [("10.0.0.2", 3)])
    (pex,) = pump(a, b)
    assert pex == m.Pex((("10.0.0.1", 1000), ("::1", 2000)), (("10.0.0.2", 3),))


def test_bad_extension_payload() -> None:
    a, b = pair()
    a.ext_handshake(metadata_size=1, listen_port=None)
    pump(a, b)
    with pytest.raises(PeerProtocolError):
        b.receive_data(m.extended(m.UT_METADATA_ID, b"d8:msg_typei1e5:piecei0e10:total_sizei5ee" + b"x" * 20000))
    _, c = pair()
    with pytest.raises(PeerProtocolError):
        c.receive_data(m.extended(0, b"not bencode"))


def test_keepalive_and_unknown_ids() -> None:
    _, b = pair()
    b.receive_data(b"\0\0\0\0" + msg(99, b"whatever"))
    assert b.events() == [m.KeepAlive()]


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_fuzz_after_handshake(data: bytes) -> None:
    _, b = pair()
    try:
        b.receive_data(data)
    except PeerProtocolError:
        pass


@given(st.lists(st.tuples(st.integers(0, 25), st.binary(max_size=30)), max_size=8))
@settings(max_examples=500, deadline=None)
def test_fuzz_framed_messages(items: list[tuple[int, bytes]]) -> None:
    _, b = pair()
    try:
        for msg_id, payload in items:
            b.receive_data(msg(msg_id, payload))
    except PeerProtocolError:
        pass


@given(st.dictionaries(st.binary(max_size=12), st.one_of(st.integers(-3, 70000), st.binary(max_size=40)), max_size=5),
       st.sampled_from([0, m.UT_METADATA_ID, m.UT_PEX_ID, 9]))
@settings(max_examples=400, deadline=None)
def test_fuzz_extended(d: dict[bytes, object], ext_id: int) -> None:
    _, b = pair()
    try:
        b.receive_data(m.extended(ext_id, bencode.encode(d)))
    except PeerProtocolError:
        pass
