"""Routing table, tokens, peer store, lookups and the node's query handling, fed directly."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.dht.ids import NodeInfo, id_int, random_id
from hivecast.dht.krpc import Error, Query, Response, decode_message, encode_message
from hivecast.dht.lookup import Lookup
from hivecast.dht.node import DhtConfig, DhtNode, LookupDone, PingDone
from hivecast.dht.peers import PeerStore
from hivecast.dht.routing import BAD_AFTER_FAILURES, Liveness, PingNeeded, RoutingTable
from hivecast.dht.tokens import TokenManager

RNG = random.Random(7)


def node(i: int, rng: random.Random = RNG) -> NodeInfo:
    return NodeInfo.make(random_id(rng), (f"10.0.{i // 250}.{i % 250 + 1}", 6881))


# -- routing table -----------------------------------------------------------------------------
def test_buckets_hold_k_and_split_only_around_own_id() -> None:
    own = b"\x00" * 20
    table = RoutingTable(own, k=8)
    rng = random.Random(1)
    for i in range(400):
        table.heard_from(node(i, rng), 0.0, responded=True)
    assert all(len(b.entries) <= 8 for b in table.buckets)
    assert len(table.buckets) > 1
    # Every bucket but the one holding our id is a "far" bucket that was never split further.
    assert all(b.covers(0) or b.low == b.high - (b.high - b.low) for b in table.buckets)
    assert sum(b.high - b.low for b in table.buckets) == 1 << 160
    far = table.bucket_for(1 << 159)
    assert len(far.entries) == 8 and len(far.replacements) > 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**160 - 1), st.integers(1, 20))
def test_closest_matches_brute_force(target: int, count: int) -> None:
    rng = random.Random(3)
    table = RoutingTable(random_id(rng))
    for i in range(300):
        table.heard_from(node(i, rng), 0.0, responded=True)
    expected = sorted(table.nodes(), key=lambda n: n.int_id ^ target)[:count]
    assert table.closest(target, count) == expected


def test_liveness_ping_and_replacement() -> None:
    own = b"\x00" * 20
    table = RoutingTable(own, k=2)
    far = [NodeInfo.make(bytes([0x80 + i]) + b"\x00" * 19, ("10.0.0.1", 1000 + i)) for i in range(3)]
    table.heard_from(far[0], 0.0, responded=True)
    table.heard_from(far[1], 0.0, responded=True)
    assert table.heard_from(far[2], 1.0, responded=True) is None  # both good: candidate is cached
    entry = table.get(far[0].id)
    assert entry is not None and entry.liveness(1.0) is Liveness.GOOD
    assert entry.liveness(16 * 60.0) is Liveness.QUESTIONABLE
    need = table.heard_from(far[2], 16 * 60.0, responded=True)
    assert isinstance(need, PingNeeded) and need.candidate == far[2]
    for _ in range(BAD_AFTER_FAILURES):
        table.failed(far[0], 16 * 60.0)
    assert table.get(far[0].id) is None and table.get(far[2].id) is not None  # replaced from the cache


def test_same_id_new_address_does_not_hijack() -> None:
    table = RoutingTable(b"\x00" * 20)
    a = NodeInfo.make(b"\x80" * 20, ("10.0.0.1", 1))
    table.heard_from(a, 0.0, responded=True)
    table.heard_from(NodeInfo.make(a.id, ("10.6.6.6", 1)), 1.0, responded=True)
    entry = table.get(a.id)
    assert entry is not None and entry.node.addr == ("10.0.0.1", 1)


# -- tokens and peers ----------------------------------------------------------------------------
def test_tokens_bound_to_ip_and_rotate() -> None:
    tm = TokenManager(random.Random(1), 0.0, rotate_every=300.0)
    token = tm.issue("10.0.0.1", 0.0)
    assert tm.valid(token, "10.0.0.1", 10.0)
    assert not tm.valid(token, "10.0.0.2", 10.0)  # issued to another address
    assert not tm.valid(b"x" * 8, "10.0.0.1", 10.0)
    assert not tm.valid(token + b"x", "10.0.0.1", 10.0)
    assert tm.valid(token, "10.0.0.1", 350.0)  # previous secret still accepted
    assert not tm.valid(token, "10.0.0.1", 700.0)  # two rotations later it is dead


def test_peer_store_expiry_and_bounds() -> None:
    store = PeerStore(ttl=100.0, max_torrents=2, max_peers=3)
    h1, h2, h3 = b"1" * 20, b"2" * 20, b"3" * 20
    for port in range(1, 6):
        store.announce(h1, ("10.0.0.1", port), float(port))
    assert len(store.get(h1, 10.0)) == 3
    store.announce(h2, ("10.0.0.2", 1), 10.0)
    store.announce(h3, ("10.0.0.3", 1), 10.0)  # evicts the least recently announced torrent
    assert store.get(h1, 10.0) == [] and len(store) == 2
    assert store.get(h2, 200.0) == []  # expired


# -- lookups --------------------------------------------------------------------------------------
def test_lookup_converges_and_counts_hops() -> None:
    rng = random.Random(5)
    everyone = [node(i, rng) for i in range(200)]
    target = random_id(rng)
    t = id_int(target)
    truth = sorted(everyone, key=lambda n: n.int_id ^ t)[:8]
    lookup = Lookup.start(target, "find_node", everyone[:3], 0.0, k=8, alpha=3)
    now = 0.0
    while not lookup.done:
        batch = lookup.next_queries(now)
        assert batch or lookup.done
        for n in batch:
            # Each node knows the 8 nodes closest to the target among a random half of the network.
            known = sorted(random.Random(n.int_id).sample(everyone, 100), key=lambda m: m.int_id ^ t)[:8]
            lookup.on_reply(n, now, nodes=known)
        now += 0.1
    assert [c.node for c in lookup.closest()] == truth
    assert lookup.hops >= 1 and lookup.stats.queries <= 200


def test_lookup_survives_timeouts() -> None:
    rng = random.Random(6)
    seeds = [node(i, rng) for i in range(5)]
    lookup = Lookup.start(random_id(rng), "find_node", seeds, 0.0, k=2, alpha=3)
    first = lookup.next_queries(0.0)
    assert len(first) == 2  # only the k closest not yet queried are asked
    for n in first:
        lookup.on_failure(n, 4.0)
    rest = lookup.next_queries(4.0)
    assert len(rest) == 2
    for n in rest:
        lookup.on_reply(n, 4.5)
    assert lookup.done and len(lookup.closest()) == 2


# -- the node's query handler ------------------------------------------------------------------
ADDR = ("10.9.9.9", 5000)


def make_node(**cfg: object) -> DhtNode:
    return DhtNode(b"\x55" * 20, 0.0, config=DhtConfig(**cfg), rng=random.Random(1))  # type: ignore[arg-type]


def ask(dht: DhtNode, query: Query, addr: tuple[str, int] = ADDR, now: float = 1.0) -> Response | Error | None:
    dht.receive(encode_message(query), addr, now)
    out = dht.take_datagrams()
    if not out:
        return None
    data, dst = out[-1]
    assert dst == addr
    reply = decode_message(data)
    assert not isinstance(reply, Query)
    return reply


def test_answers_ping_find_node_get_peers() -> None:
    dht = make_node()
    r = ask(dht, Query(b"t1", "ping", b"\x01" * 20))
    assert isinstance(r, Response) and r.sender == dht.id and r.ip == ADDR
    r = ask(dht, Query(b"t2", "find_node", b"\x01" * 20, target=b"\x02" * 20))
    assert isinstance(r, Response) and r.nodes == [NodeInfo.make(b"\x01" * 20, ADDR)]
    r = ask(dht, Query(b"t3", "get_peers", b"\x01" * 20, target=b"\x03" * 20))
    assert isinstance(r, Response) and r.token and r.values is None


def test_announce_needs_a_valid_token() -> None:
    dht = make_node()
    info_hash = b"\x03" * 20
    r = ask(dht, Query(b"t1", "get_peers", b"\x01" * 20, target=info_hash))
    assert isinstance(r, Response) and r.token is not None
    token = r.token
    # Spoofed: a token from another address, a made-up token, a token for the right IP but garbage.
    for addr, tok in ((("10.6.6.6", 5000), token), (ADDR, b"\x00" * 8), (ADDR, b"short")):
        bad = ask(dht, Query(b"t2", "announce_peer", b"\x01" * 20, target=info_hash, port=7000, token=tok), addr)
        assert isinstance(bad, Error) and bad.code == 203
    assert dht.peer_store.get(info_hash, 2.0) == []
    assert dht.stats.bad_tokens == 3
    ok = ask(dht, Query(b"t3", "announce_peer", b"\x01" * 20, target=info_hash, port=7000, token=token))
    assert isinstance(ok, Response)
    assert dht.peer_store.get(info_hash, 2.0) == [("10.9.9.9", 7000)]
    r = ask(dht, Query(b"t4", "get_peers", b"\x02" * 20, target=info_hash), ("10.1.1.1", 1))
    assert isinstance(r, Response) and r.values == [("10.9.9.9", 7000)]
    ask(dht, Query(b"t5", "announce_peer", b"\x01" * 20, target=info_hash, port=1, token=token,
                   implied_port=True))
    assert ("10.9.9.9", 5000) in dht.peer_store.get(info_hash, 2.0)


def test_query_flood_from_one_address_is_rate_limited() -> None:
    dht = make_node(rate=10.0, burst=20.0)
    for i in range(500):
        dht.receive(encode_message(Query(i.to_bytes(2, "big"), "ping", b"\x01" * 20)), ADDR, 1.0)
    answered = len(dht.take_datagrams())
    assert answered == 20 and dht.stats.rate_limited == 480
    # Another address is not affected, and the flooder gets tokens back as time passes.
    assert ask(dht, Query(b"x", "ping", b"\x02" * 20), ("10.2.2.2", 1)) is not None
    assert ask(dht, Query(b"y", "ping", b"\x01" * 20), ADDR, now=2.0) is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_malformed_packets_never_crash(data: bytes) -> None:
    dht = make_node()
    dht.receive(data, ADDR, 1.0)
    dht.receive(b"d1:t2:zz1:y1:q1:q4:pinge", ADDR, 1.0)  # valid tid, missing arguments
    for raw, _ in dht.take_datagrams():
        assert isinstance(decode_message(raw), Error | Response)


def test_unknown_method_and_unsolicited_replies() -> None:
    dht = make_node()
    r = ask(dht, Query(b"t1", "vote", b"\x01" * 20))
    assert isinstance(r, Error) and r.code == 204
    dht.receive(encode_message(Response(b"zz", b"\x01" * 20)), ADDR, 1.0)  # nobody asked
    assert dht.stats.unexpected == 1 and not dht.take_datagrams()


def test_ping_reply_only_from_the_address_asked() -> None:
    dht = make_node()
    rid = dht.ping(("10.0.0.8", 6881), 0.0)
    (data, _), = dht.take_datagrams()
    q = decode_message(data)
    spoof = Response(q.t, b"\x07" * 20)
    dht.receive(encode_message(spoof), ("10.6.6.6", 6881), 0.5)  # right tid, wrong address
    assert dht.take_events() == [] and dht.stats.unexpected == 1
    dht.receive(encode_message(spoof), ("10.0.0.8", 6881), 0.6)
    (event,) = dht.take_events()
    assert isinstance(event, PingDone) and event.request_id == rid and event.node is not None
    rid2 = dht.ping(("10.0.0.9", 6881), 1.0)
    dht.tick(100.0)
    assert dht.take_events() == [PingDone(rid2, None)]


def test_read_only_node_does_not_answer_and_flags_queries() -> None:
    dht = make_node(read_only=True)
    assert ask(dht, Query(b"t1", "ping", b"\x01" * 20)) is None
    dht.ping(("10.0.0.8", 6881), 0.0)
    (data, _), = dht.take_datagrams()
    q = decode_message(data)
    assert isinstance(q, Query) and q.read_only
    # A normal node does not put read-only queriers in its routing table (BEP 43).
    normal = make_node()
    ask(normal, q, ("10.0.0.3", 1))
    assert len(normal.table) == 0


def test_lookup_event_after_all_seeds_time_out() -> None:
    dht = make_node()
    seeds = [node(i) for i in range(3)]
    lookup_id = dht.start_lookup(b"\x09" * 20, 0.0, seeds=seeds)
    assert len(dht.take_datagrams()) == 3
    dht.tick(10.0)
    (event,) = dht.take_events()
    assert isinstance(event, LookupDone) and event.lookup_id == lookup_id and event.lookup.closest() == []


def test_bep44_immutable_put_and_get() -> None:
    import hashlib

    from hivecast.dht.krpc import MESSAGE_TOO_BIG
    from hivecast.p2p.bencode import encode

    dht = make_node()
    value = {b"title": b"hivecast", b"n": 7}
    target = hashlib.sha1(encode(value)).digest()
    r = ask(dht, Query(b"g1", "get", b"\x01" * 20, target=target))
    assert isinstance(r, Response) and r.token is not None and r.value is None
    bad = ask(dht, Query(b"p0", "put", b"\x01" * 20, token=b"\x00" * 8, value=value))
    assert isinstance(bad, Error) and bad.code == 203
    big = ask(dht, Query(b"p1", "put", b"\x01" * 20, token=r.token, value=b"x" * 1200))
    assert isinstance(big, Error) and big.code == MESSAGE_TOO_BIG
    ok = ask(dht, Query(b"p2", "put", b"\x01" * 20, token=r.token, value=value))
    assert isinstance(ok, Response)
    r = ask(dht, Query(b"g2", "get", b"\x02" * 20, target=target), ("10.3.3.3", 1))
    assert isinstance(r, Response) and r.value == value


def test_bep44_get_lookup_believes_only_matching_values() -> None:
    dht = make_node()
    seeds = [node(i) for i in range(2)]
    lookup_id = dht.start_lookup(b"\x09" * 20, 0.0, method="get", seeds=seeds)
    for data, addr in dht.take_datagrams():
        q = decode_message(data)
        src = next(s for s in seeds if s.addr == addr)
        dht.receive(encode_message(Response(q.t, src.id, value=b"forged")), addr, 0.1)
    (event,) = dht.take_events()
    assert isinstance(event, LookupDone) and event.lookup_id == lookup_id and event.lookup.value is None
