"""Small simulations (the 10,000-node figures come from bench/dht_sim.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hivecast.chord.node import ChordConfig
from hivecast.sim.chord import ChordSim
from hivecast.sim.clock import VirtualClock
from hivecast.sim.kademlia import KademliaSim
from hivecast.sim.network import LatencyModel, VirtualNetwork
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import gini, summarize, write_csv

pytestmark = pytest.mark.timeout(240)


def test_clock_and_network_basics() -> None:
    clock = VirtualClock()
    net = VirtualNetwork(clock, derive_rng(1, "n"), latency=LatencyModel(0.01, 0.0))
    got: list[tuple[object, object, float]] = []
    net.attach("b", lambda payload, src: got.append((payload, src, clock.now)))
    net.send("a", "b", "hello")
    net.send("a", "dead", "lost")
    clock.run_until(1.0)
    assert got == [("hello", "a", 0.01)] and net.to_dead == 1 and clock.now == 1.0
    with pytest.raises(ValueError):
        VirtualNetwork(clock, derive_rng(1), loss=1.5)
    assert gini([1, 1, 1]) == 0.0 and gini([0, 0, 9]) > 0.6


def test_kademlia_500_nodes_with_and_without_churn() -> None:
    sim = KademliaSim(seed=11)
    sim.build(500)
    sim.announce(30)
    calm = summarize(sim.lookups(200))
    assert calm["success_rate"] >= 0.99
    assert 1 <= calm["mean_hops"] <= math.log2(500)
    sim.churn(0.2)
    churned = summarize(sim.lookups(200, churn=0.2))
    assert churned["success_rate"] >= 0.95


def test_kademlia_over_real_bencoded_datagrams() -> None:
    sim = KademliaSim(seed=3, wire=True)
    sim.build(120)
    sim.announce(5)
    assert summarize(sim.lookups(30))["success_rate"] == 1.0


def test_simulation_is_deterministic(tmp_path: Path) -> None:
    def run(path: Path) -> bytes:
        sim = KademliaSim(seed=5)
        sim.build(150)
        sim.announce(5)
        write_csv(sim.lookups(40), path)
        return path.read_bytes()

    assert run(tmp_path / "a.csv") == run(tmp_path / "b.csv")


def test_chord_1000_nodes_hops_about_half_log2_n() -> None:
    sim = ChordSim(seed=2)
    sim.build(1000)
    figures = summarize(sim.lookups(1000))
    assert figures["success_rate"] == 1.0
    expected = 0.5 * math.log2(1000)
    assert abs(figures["mean_hops"] - expected) / expected < 0.15, figures


def test_chord_protocol_joins_and_churn_converge() -> None:
    """Members join one by one through the protocol (no installed tables), then 20% churn."""
    sim = ChordSim(seed=4, config=ChordConfig(bits=32, stabilize_every=1.0, fix_fingers_every=0.2,
                                              check_predecessor_every=1.0))
    sim.build(1)
    for _ in range(60):
        sim.join_node()
        sim.clock.run_until(sim.clock.now + 2.0)
    sim.clock.run_until(sim.clock.now + 60.0)
    ring = sorted(h.ref.id for h in sim.hosts.values())
    for host in sim.hosts.values():  # every successor pointer is right
        i = ring.index(host.ref.id)
        assert host.node.successor.id == ring[(i + 1) % len(ring)]
    assert summarize(sim.lookups(200))["success_rate"] == 1.0
    sim.churn(0.2, settle=60.0)
    assert summarize(sim.lookups(200, churn=0.2))["success_rate"] >= 0.95
