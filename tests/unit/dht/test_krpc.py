from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.dht.errors import KrpcError
from hivecast.dht.ids import NodeInfo, bep42_node_id, bep42_valid, crc32c, decode_nodes, encode_nodes
from hivecast.dht.krpc import MAX_DATAGRAM, Error, Query, Response, decode_message, encode_message
from hivecast.p2p.bencode import encode

ID = b"A" * 20
OTHER = b"B" * 20


@pytest.mark.parametrize("msg", [
    Query(b"aa", "ping", ID),
    Query(b"ab", "find_node", ID, target=OTHER),
    Query(b"ac", "get_peers", ID, target=OTHER, read_only=True),
    Query(b"ad", "announce_peer", ID, target=OTHER, port=6881, token=b"tok"),
    Query(b"ae", "announce_peer", ID, target=OTHER, port=0, token=b"tok", implied_port=True),
    Response(b"aa", ID, nodes=[NodeInfo.make(OTHER, ("10.0.0.1", 6881))], values=[("1.2.3.4", 80)],
             token=b"t", ip=("5.6.7.8", 9)),
    Error(b"aa", 203, "bad token"),
])
def test_round_trip(msg: Query | Response | Error) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_bep5_example_ping() -> None:
    # The ping query as printed in BEP 5.
    msg = decode_message(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
    assert isinstance(msg, Query) and msg.method == "ping" and msg.sender == b"abcdefghij0123456789"


@pytest.mark.parametrize("raw", [
    b"",
    b"i1e",
    b"d1:t2:aa1:y1:xe",  # unknown type
    b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe",  # short id
    b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe",  # empty tid
    b"d1:ad2:id20:abcdefghij01234567896:target3:abce1:q9:find_node1:t2:aa1:y1:qe",  # short target
    b"d1:rd2:id20:abcdefghij01234567895:nodes5:12345e1:t2:aa1:y1:re",  # nodes not a multiple of 26
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti70000e5:token1:xe"
    b"1:q13:announce_peer1:t2:aa1:y1:qe",  # port out of range
    b"d1:y1:q1:t2:aa1:ad2:id20:abcdefghij0123456789e1:q4:pinge",  # keys not sorted
    b"d1:eli201e3:abce1:t" + b"40:" + b"x" * 40 + b"1:y1:ee",  # tid too long
])
def test_rejects_invalid(raw: bytes) -> None:
    with pytest.raises(KrpcError):
        decode_message(raw)


def test_rejects_oversized() -> None:
    raw = encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"x": b"y" * MAX_DATAGRAM}})
    with pytest.raises(KrpcError):
        decode_message(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_only_krpc_error(data: bytes) -> None:
    try:
        decode_message(data)
    except KrpcError:
        pass


_bvalue = st.recursive(
    st.integers(-(2**40), 2**40) | st.binary(max_size=30) | st.sampled_from([b"q", b"r", b"e", b"ping", ID]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from([b"t", b"y", b"q", b"a", b"r", b"e", b"id", b"target", b"info_hash", b"port",
                         b"token", b"nodes", b"values", b"implied_port", b"ip", b"v", b"ro"]), inner, max_size=6),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(_bvalue)
def test_fuzz_structured_messages(value: object) -> None:
    """Well-formed bencode with KRPC-like keys and wrong types: parsed or KrpcError, nothing else."""
    try:
        decode_message(encode(value))
    except KrpcError:
        pass


@given(st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.integers(1, 65535)), max_size=10))
def test_compact_nodes_round_trip(items: list[tuple[bytes, int]]) -> None:
    nodes = [NodeInfo.make(i, ("10.1.2.3", p)) for i, p in items]
    assert decode_nodes(encode_nodes(nodes)) == nodes


def test_bep42_vectors() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    # Test vectors from BEP 42: (ip, rand, first three bytes of the id with the random bits masked)
    vectors = [("124.31.75.21", 1, 0x5FBFB8), ("21.75.31.124", 86, 0x5A3CE8), ("65.23.51.170", 22, 0xA5D430),
               ("84.124.73.14", 65, 0x1B0320), ("43.213.53.83", 90, 0xE56F68)]
    rng = random.Random(1)
    for ip, r, prefix in vectors:
        node_id = bep42_node_id(ip, rng, r)
        assert int.from_bytes(node_id[:3], "big") & 0xFFFFF8 == prefix
        assert node_id[19] == r and bep42_valid(node_id, ip)
        assert not bep42_valid(bytes([node_id[0] ^ 0x80]) + node_id[1:], ip)
    assert bep42_valid(b"\x00" * 20, "127.0.0.1")  # local addresses are exempt
