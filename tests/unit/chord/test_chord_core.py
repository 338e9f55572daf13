from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.chord.messages import ChordProtocolError, Reply, Request, decode, encode
from hivecast.chord.node import ChordConfig, ChordNode
from hivecast.chord.ring import UNKNOWN_ID, NodeRef, in_half_open, in_open, key_id

BITS = 16


def ref(i: int, port: int = 7000) -> NodeRef:
    return NodeRef(i, ("127.0.0.1", port + i % 1000), f"http://e{i}")


def test_ring_intervals_wrap() -> None:
    assert in_open(5, 2, 9) and not in_open(2, 2, 9) and not in_open(9, 2, 9)
    assert in_open(1, 60000, 3) and in_open(65000, 60000, 3) and not in_open(30, 60000, 3)
    assert in_half_open(9, 2, 9) and not in_half_open(2, 2, 9)
    assert in_open(7, 4, 4) and not in_open(4, 4, 4) and in_half_open(4, 4, 4)
    assert 0 <= key_id("x", BITS) < 1 << BITS and key_id("x") == key_id(b"x")


def test_messages_round_trip() -> None:
    req = Request(7, "step", ref(3), key=42, exclude=[1, 2])
    rep = Reply(7, ref(4), done=True, node=ref(5), successors=[ref(6), ref(7)])
    assert decode(encode(req), BITS) == req
    assert decode(encode(rep), BITS) == rep


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_decode_only_protocol_errors(data: bytes) -> None:
    try:
        decode(data, BITS)
    except ChordProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["r", "op", "s", "k", "x", "re", "d", "n", "sl"]),
                       st.none() | st.integers(-5, 2**20) | st.text(max_size=5)
                       | st.lists(st.integers(-1, 70000) | st.text(max_size=3), max_size=5), max_size=9))
def test_fuzz_structured(body: dict[str, object]) -> None:
    import json

    try:
        decode(json.dumps(body).encode(), BITS)
    except ChordProtocolError:
        pass


def test_local_step_and_closest_preceding() -> None:
    node = ChordNode(ref(100), 0.0, config=ChordConfig(bits=BITS, maintenance=False))
    fingers: list[NodeRef | None] = [None] * BITS
    fingers[0], fingers[5], fingers[10] = ref(110), ref(140), ref(1200)
    node.set_tables([ref(110), ref(140)], ref(50), fingers)
    assert node.local_step(105) == (True, ref(110))  # our successor owns it
    assert node.local_step(1000) == (False, ref(140))
    assert node.local_step(5000) == (False, ref(1200))
    assert node.local_step(5000, {1200}) == (False, ref(140))  # the dead finger is skipped


def test_lookup_ignores_replies_from_unasked_addresses_and_backs_up_on_timeout() -> None:
    node = ChordNode(ref(100), 0.0, config=ChordConfig(bits=BITS, maintenance=False, rpc_timeout=1.0,
                                                       confirm_owner=False))
    fingers: list[NodeRef | None] = [None] * BITS
    fingers[12] = ref(5000)
    node.set_tables([ref(110), ref(140)], ref(50), fingers)
    lookup_id = node.start_lookup(6000, 0.0)
    ((req, dst),) = node.take_messages()
    assert isinstance(req, Request) and dst == ref(5000).addr
    node.handle(Reply(req.rid, ref(5000), done=True, node=ref(9)), ("127.0.0.1", 1), 0.1)  # spoofed
    assert node.take_events() == []
    node.tick(2.0)  # 5000 timed out: it is forgotten and the lookup decides locally again
    ((req2, dst2),) = node.take_messages()
    assert dst2 == ref(140).addr and isinstance(req2, Request)
    node.handle(Reply(req2.rid, ref(140), done=True, node=ref(7000)), ref(140).addr, 2.1)
    (event,) = node.take_events()
    assert event.lookup_id == lookup_id and event.lookup.ok and event.lookup.owner == ref(7000)
    assert event.lookup.hops == 1 and all(f is None or f.id != 5000 for f in node.fingers)


def test_dead_owner_is_not_reported() -> None:
    """A node names a successor that has died; the ping to confirm it times out, the lookup asks
    again excluding it and reports the next live node."""
    node = ChordNode(ref(100), 0.0, config=ChordConfig(bits=BITS, maintenance=False, rpc_timeout=1.0))
    node.set_tables([ref(140)], ref(50), [None] * BITS)
    lookup_id = node.start_lookup(3000, 0.0)
    ((req, _),) = node.take_messages()
    node.handle(Reply(req.rid, ref(140), done=True, node=ref(2000)), ref(140).addr, 0.1)
    ((ping, dst),) = node.take_messages()
    assert isinstance(ping, Request) and ping.op == "ping" and dst == ref(2000).addr
    node.tick(2.0)  # no answer from 2000
    ((again, dst2),) = node.take_messages()
    assert isinstance(again, Request) and again.op == "step" and dst2 == ref(140).addr and again.exclude == [2000]
    node.handle(Reply(again.rid, ref(140), done=True, node=ref(4000)), ref(140).addr, 2.1)
    ((ping2, _),) = node.take_messages()
    node.handle(Reply(ping2.rid, ref(4000)), ref(4000).addr, 2.2)
    (event,) = node.take_events()
    assert event.lookup_id == lookup_id and event.lookup.owner == ref(4000) and event.lookup.hops == 1


def test_join_through_a_seed_known_by_address_only_crosses_zero() -> None:
    """A newcomer with a small id joins through a seed whose next hop lies past zero on the ring
    (members 40002 and 50003, newcomer 1001 asks 40002, which forwards to 50003). The seed's id is
    unknown when it is asked; the progress check must use the id its answer carries."""
    newcomer = ChordNode(ref(1001), 0.0, config=ChordConfig(bits=BITS, maintenance=False))
    seed = ChordNode(ref(40002), 0.0, config=ChordConfig(bits=BITS, maintenance=False))
    seed.set_tables([ref(50003)], ref(50003), [None] * BITS)
    newcomer.join(NodeRef(UNKNOWN_ID, ref(40002).addr), 0.0, rejoin=True)
    ((ask, dst),) = newcomer.take_messages()
    assert isinstance(ask, Request) and dst == ref(40002).addr
    seed.handle(ask, ref(1001).addr, 0.1)
    ((answer, _),) = seed.take_messages()
    assert isinstance(answer, Reply) and not answer.done and answer.node == ref(50003)
    newcomer.handle(answer, ref(40002).addr, 0.1)
    ((ask2, dst2),) = newcomer.take_messages()  # on to 50000, not given up
    assert isinstance(ask2, Request) and ask2.op == "step" and dst2 == ref(50003).addr
    newcomer.handle(Reply(ask2.rid, ref(50003), done=True, node=ref(40002)), ref(50003).addr, 0.2)
    assert newcomer.successor == ref(40002)
