from __future__ import annotations

import struct
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.p2p import bencode
from hivecast.p2p.errors import TrackerError
from hivecast.p2p.tracker import http, udp
from hivecast.p2p.tracker.core import AnnounceRequest, TrackerCore, TrackerLimits

IH = bytes(range(20))


def req(pid: bytes, port: int, left: int = 10, event: str = "", ip: str = "10.0.0.1", numwant: int | None = None,
        ih: bytes = IH) -> AnnounceRequest:
    return AnnounceRequest(info_hash=ih, peer_id=pid.ljust(20, b"-"), ip=ip, port=port, left=left, event=event,
                           numwant=numwant)


def test_swarm_counts_numwant_and_expiry() -> None:
    core = TrackerCore(TrackerLimits(peer_ttl=100, max_numwant=3))
    core.announce(req(b"seed", 1, left=0), now=0)
    for i in range(5):
        core.announce(req(b"p%d" % i, 10 + i, event="started"), now=1)
    res = core.announce(req(b"p0", 10, numwant=50), now=2)
    assert len(res.peers) == 3 and res.complete == 1 and res.incomplete == 5
    # A seed is not sent other seeds.
    assert all(pid != b"seed".ljust(20, b"-") for *_, pid in core.announce(req(b"s2", 2, left=0), now=2).peers)
    core.announce(req(b"p1", 11, left=0, event="completed"), now=3)
    assert core.scrape([IH], now=3)[IH] == (3, 1, 4)
    core.announce(req(b"p2", 12, event="stopped"), now=4)
    assert core.scrape([IH], now=4)[IH][2] == 3
    # Everyone but the peer that announces at t=150 has expired.
    res = core.announce(req(b"late", 99), now=150)
    assert res.peers == [] and res.incomplete == 1


def test_only_own_torrents_and_validation() -> None:
    core = TrackerCore(allowed=lambda h: h == IH)
    with pytest.raises(TrackerError, match="unregistered"):
        core.announce(req(b"x", 1, ih=b"\1" * 20), now=0)
    for bad in (req(b"x", 0), req(b"x", 1, event="bogus"), AnnounceRequest(IH, b"short", "1.2.3.4", 1)):
        with pytest.raises(TrackerError):
            core.announce(bad, now=0)


def query(**over: object) -> str:
    params: dict[str, object] = {"info_hash": quote_from_bytes(IH, safe=""), "peer_id": "A" * 20, "port": 6881,
                                 "uploaded": 0, "downloaded": 0, "left": 5, "compact": 1}
    params.update(over)
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


def test_http_announce_compact_and_ipv6() -> None:
    core = TrackerCore()
    r, _compact = http.parse_announce(query(), "127.0.0.1")
    core.announce(r, now=0)
    r6, _ = http.parse_announce(query(peer_id="B" * 20, port=7000), "::1")
    res = core.announce(r6, now=0)
    body = bencode.decode(http.announce_response(res, compact=True))
    assert body[b"peers"] == bytes([127, 0, 0, 1]) + struct.pack(">H", 6881)
    res = core.announce(http.parse_announce(query(peer_id="C" * 20), "127.0.0.1")[0], now=0)
    body = bencode.decode(http.announce_response(res, compact=True))
    assert len(body[b"peers6"]) == 18
    interval, peers = http.parse_announce_response(http.announce_response(res, compact=True))
    assert ("::1", 7000) in peers and interval == 1800
    full = bencode.decode(http.announce_response(res, compact=False))
    assert {p[b"port"] for p in full[b"peers"]} == {6881, 7000}


@pytest.mark.parametrize("q", [query(info_hash="abc"), query(peer_id=None), query(port="x"), query(port=0),
                               query(left="-1"), query(ip="not-an-ip"), "x" * 9000])
def test_http_malformed_announces_fail(q: str) -> None:
    with pytest.raises(TrackerError):
        http.parse_announce(q, "127.0.0.1")


def test_failure_and_scrape_bodies() -> None:
    assert bencode.decode(http.failure("nope")) == {b"failure reason": b"nope"}
    with pytest.raises(TrackerError, match="nope"):
        http.parse_announce_response(http.failure("nope"))
    hashes = http.parse_scrape(f"info_hash={quote_from_bytes(IH, safe='')}")
    body = bencode.decode(http.scrape_response({hashes[0]: (1, 2, 3)}))
    assert body[b"files"][IH] == {b"complete": 1, b"downloaded": 2, b"incomplete": 3}
    assert http.scrape_url("http://t/announce?k=1") == "http://t/scrape?k=1"
    assert http.scrape_url("http://t/a") is None


def test_udp_connect_announce_scrape() -> None:
    core = TrackerCore()
    proto = udp.UdpTrackerProtocol(core, secret=b"s" * 32)
    addr = ("127.0.0.1", 5000)
    reply = proto.handle(udp.connect_request(7), addr, now=10)
    assert reply is not None
    action, txid, cid = struct.unpack(">IIQ", reply)
    assert (action, txid) == (0, 7)
    core.announce(req(b"other", 6000, ip="127.0.0.1"), now=10)
    reply = proto.handle(udp.announce_request(cid, 8, info_hash=IH, peer_id=b"U" * 20, port=5001, left=1,
                                              event=2), addr, now=20)
    assert reply is not None
    action, txid, _interval, leechers, _seeders = struct.unpack_from(">IIIII", reply)
    assert (action, txid, leechers) == (1, 8, 2) and reply[20:] == bytes([127, 0, 0, 1]) + struct.pack(">H", 6000)
    reply = proto.handle(struct.pack(">QII", cid, 2, 9) + IH, addr, now=30)
    assert reply == struct.pack(">IIIII", 2, 9, 0, 0, 2)
    # Still valid a minute later, not two minutes later, and never from another address.
    assert proto.handle(struct.pack(">QII", cid, 2, 9) + IH, addr, now=70) is not None
    assert proto.handle(struct.pack(">QII", cid, 2, 9) + IH, addr, now=200) is None
    assert proto.handle(struct.pack(">QII", cid, 2, 9) + IH, ("127.0.0.2", 5000), now=30) is None


def test_udp_errors() -> None:
    proto = udp.UdpTrackerProtocol(TrackerCore(allowed=lambda h: False))
    addr = ("127.0.0.1", 1)
    assert proto.handle(b"short", addr, 0) is None
    assert proto.handle(struct.pack(">QII", 123, 0, 1), addr, 0) is None  # wrong protocol id
    cid = proto.connection_id(addr, 0)
    reply = proto.handle(udp.announce_request(cid, 5, info_hash=IH, peer_id=b"x" * 20, port=1), addr, 0)
    assert reply is not None and reply[:8] == struct.pack(">II", 3, 5) and b"unregistered" in reply
    reply = proto.handle(struct.pack(">QII", cid, 1, 6) + b"\0" * 10, addr, 0)
    assert reply is not None and reply.startswith(struct.pack(">II", 3, 6))


@given(st.binary(max_size=150))
@settings(max_examples=500, deadline=None)
def test_fuzz_udp(data: bytes) -> None:
    proto = udp.UdpTrackerProtocol(TrackerCore(), secret=b"k" * 32)
    addr = ("127.0.0.1", 9)
    proto.handle(data, addr, 0)
    cid = proto.connection_id(addr, 0)
    proto.handle(struct.pack(">Q", cid) + data[8:], addr, 0)


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_fuzz_http_announce(q: str) -> None:
    core = TrackerCore()
    try:
        r, _ = http.parse_announce(q, "127.0.0.1")
        core.announce(r, now=0)
    except TrackerError:
        pass


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_fuzz_announce_response(data: bytes) -> None:
    try:
        http.parse_announce_response(data)
    except TrackerError:
        pass
