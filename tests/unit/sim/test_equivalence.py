"""The fast paths give the figures of the straightforward message-by-message code they replaced:
array floods against a set-based flood, super-peer floods from precomputed levels against a walked
flood, the depth-indexed routing table against a brute-force sort, and the clock's list heap."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.dht.ids import ID_BITS, NodeInfo
from hivecast.dht.routing import BAD_AFTER_FAILURES, RoutingTable
from hivecast.sim.clock import VirtualClock
from hivecast.sim.overlays.flooding import ExpandingRing, Flooding
from hivecast.sim.overlays.hybrid import SuperPeer
from hivecast.sim.overlays.workload import Workload

pytestmark = pytest.mark.timeout(120)


def reference_flood(sim: Flooding, source: int, item: int, ttl: int) -> tuple[int, int, int, int]:
    """The original set-based flood: (found depth or -1, query messages, hit replies, total load)."""
    holders = sim.holders.get(item, set())
    if source in holders:
        return 0, 0, 0, 0
    seen = {source}
    frontier = [(source, -1)]
    messages = replies = load = 0
    found = -1
    for depth in range(1, ttl + 1):
        nxt: list[tuple[int, int]] = []
        for u, parent in frontier:
            for v in sim.links[u]:
                if v == parent:
                    continue
                messages += 1
                load += 1
                if v in seen:
                    continue
                seen.add(v)
                if v in holders:
                    replies += depth
                    if found < 0:
                        found = depth
                nxt.append((v, u))
        frontier = nxt
        if not frontier:
            break
    return found, messages, replies, load


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), degree=st.sampled_from([2, 3, 4, 6]), churn=st.integers(0, 30))
def test_array_flood_matches_set_flood(seed: int, degree: int, churn: int) -> None:
    sim = Flooding(Workload(nodes=120, lookups=1, seed=seed, churn=1.0, catalogue=40), degree=degree, ttl=4)
    sim.build()
    for _ in range(churn):  # crashes and joins change the graph (and invalidate its arrays)
        sim.crash_one()
        sim.join_one()
    rng = random.Random(seed)
    for _ in range(20):
        source = sim.live[rng.randrange(len(sim.live))]
        item = rng.randrange(40)
        ttl = rng.randrange(1, 6)
        before = int(sim._load.sum())
        found, messages, replies, _ = sim.flood(source, item, ttl)
        assert (found, messages, replies) == reference_flood(sim, source, item, ttl)[:3]
        assert int(sim._load.sum()) - before == reference_flood(sim, source, item, ttl)[3]


def test_expanding_ring_counts_every_ring() -> None:
    w = Workload(nodes=200, lookups=300, seed=4, churn=0.0, catalogue=60)
    sim = ExpandingRing(w)
    records = sim.run()
    assert sim.ttl is not None
    ref = ExpandingRing(w)  # the same graph (it is drawn from the design's own stream)
    ref.build()
    for r in records:
        total = 0
        expected_found = -1
        for ttl in range(1, ref.ttl + 1 if ref.ttl else 1):
            found, messages, replies, _ = reference_flood(ref, int(r.source), int(r.key), ttl)
            total += messages + replies
            if found >= 0:
                expected_found = found
                break
        assert (r.success, r.messages) == (expected_found >= 0, total)
        if r.success:
            assert r.hops == expected_found


def test_static_flooding_batches_by_source_with_identical_records() -> None:
    w = Workload(nodes=150, lookups=400, seed=6, catalogue=50)
    batched = Flooding(w).run()
    # The per-lookup path (used under churn) on the same static graph.
    per_lookup = Flooding(w)
    records = super(Flooding, per_lookup).run()
    assert batched == records
    again = Flooding(w)
    again.run()
    assert again.loads() == per_lookup.loads()


def reference_super_peer(sim: SuperPeer, source: int, item: int) -> tuple[bool, int, int, Counter[int]]:
    """The original super-peer lookup walked message by message: (ok, hops, messages, load)."""
    load: Counter[int] = Counter()
    if item in sim.holds.get(source, ()):
        return True, 0, 0, load
    start = sim.home[source]
    messages = 0 if start == source else 1
    hops0 = messages
    load[start] += 1
    seen = {start}
    frontier = [(start, -1)]
    found = -1
    replies = 0
    hit = sim.index[start].get(item, set())
    if any(h in sim.alive for h in hit):
        found = 0
    elif hit:
        replies += 1
    for depth in range(1, sim.ttl + 1):
        if found >= 0:
            break
        nxt: list[tuple[int, int]] = []
        for u, parent in frontier:
            for v in sim.links[u]:
                if v == parent:
                    continue
                messages += 1
                load[v] += 1
                if v in seen:
                    continue
                seen.add(v)
                nxt.append((v, u))
                answer = sim.index[v].get(item, set())
                if answer:
                    replies += depth + hops0
                    if found < 0 and any(h in sim.alive for h in answer):
                        found = depth
        frontier = nxt
    return found >= 0, hops0 + max(found, 0), messages + replies, load


@pytest.mark.parametrize("churn", [0.0, 2.0])
def test_super_peer_levels_match_walked_flood(churn: float) -> None:
    w = Workload(nodes=400, lookups=300, seed=8, churn=churn, catalogue=80)
    sim = SuperPeer(w, leaves_per_super=10)
    sim.build()
    rng = random.Random(3)
    expected_load: Counter[int] = Counter()
    for i in range(300):
        if churn and i % 3 == 0:
            sim.crash_one()
            sim.join_one()
            sim.clock.run_until(sim.clock.now + 20.0)  # some crashed peers' entries expire, some not yet
        source = sim.live[rng.randrange(len(sim.live))]
        item = rng.randrange(80)
        ok, hops, messages, load = reference_super_peer(sim, source, item)
        r = sim.lookup(i, source, item)
        assert (r.success, r.hops, r.messages) == (ok, hops, messages)
        expected_load.update(load)
    assert sim.loads() == [expected_load.get(n, 0) for n in sim.live]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(0, 400), k=st.sampled_from([2, 8]))
def test_routing_table_closest_is_the_true_nearest(seed: int, count: int, k: int) -> None:
    rng = random.Random(seed)
    own = rng.getrandbits(ID_BITS)
    table = RoutingTable(own.to_bytes(20, "big"), k=k)
    for i in range(count):
        # Half the ids near our own, so that deep buckets fill and split.
        value = own ^ rng.getrandbits(rng.choice([ID_BITS, 40, 12]))
        node = NodeInfo.make(value.to_bytes(20, "big"), ("10.0.0.1", 1000 + i))
        table.heard_from(node, 0.0, responded=rng.random() < 0.7)
    entries = [e for b in table.buckets for e in b.entries]
    for e in entries[::5]:
        e.failures = BAD_AFTER_FAILURES  # some bad contacts, which closest() leaves out
    for b in table.buckets:
        for e in b.entries:
            assert table.bucket_for(e.node.int_id) is b
    for _ in range(10):
        target = rng.getrandbits(ID_BITS) if rng.random() < 0.5 else own ^ rng.getrandbits(30)
        good = sorted((e.node for e in entries if e.failures < BAD_AFTER_FAILURES), key=lambda n: n.int_id ^ target)
        assert table.closest(target) == good[:k]
        assert table.closest(target, 3 * k) == good[: 3 * k]
        everyone = sorted((e.node for e in entries), key=lambda n: n.int_id ^ target)
        assert table.closest(target, 2 * k, include_bad=True) == everyone[: 2 * k]


def test_clock_orders_by_time_then_scheduling_and_skips_cancelled() -> None:
    clock = VirtualClock()
    ran: list[str] = []
    clock.call_at(2.0, ran.append, "b")
    clock.post(1.0, ran.append, ("a",))
    dropped = clock.call_at(1.5, ran.append, "x")
    clock.call_at(2.0, ran.append, "c")
    clock.call_at(-5.0, ran.append, "now")  # never in the past
    dropped.cancel()
    assert dropped.cancelled and dropped.at == 1.5
    assert clock.next_at() == 0.0
    clock.run_until(3.0)
    assert ran == ["now", "a", "b", "c"] and clock.now == 3.0 and clock.events_run == 4
    assert clock.next_at() is None


def test_flooding_churn_path_is_deterministic() -> None:
    w = Workload(nodes=150, lookups=200, seed=2, churn=2.0, catalogue=40)
    first = Flooding(w).run()
    assert first == Flooding(w).run()
    assert first != Flooding(replace(w, seed=3)).run()


@pytest.mark.parametrize("churn", [0.0, 3.0])
def test_can_remembered_steps_change_nothing(churn: float, monkeypatch: pytest.MonkeyPatch) -> None:
    from hivecast.sim.overlays import can

    w = Workload(nodes=300, lookups=1500, seed=12, churn=churn, catalogue=100)
    remembered = can.Can(w, d=2)
    first = remembered.run()
    assert remembered._memo or churn  # the popular items' steps were remembered
    monkeypatch.setattr(can, "MEMO_ITEMS", 0)
    plain = can.Can(w, d=2)
    assert plain.run() == first
    assert plain.loads() == remembered.loads()
