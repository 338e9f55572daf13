"""The overlay comparison at small N (the 1,000- and 10,000-node figures come from the CLI and
bench/overlays_bench.py)."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from hivecast.cli.main import main
from hivecast.sim.overlays.base import DETECT
from hivecast.sim.overlays.can import Can, _contains
from hivecast.sim.overlays.hybrid import CentralIndex
from hivecast.sim.overlays.pastry import Pastry
from hivecast.sim.overlays.run import RunConfig, run_all, run_one
from hivecast.sim.overlays.workload import OverlayParamError, Workload, item_hash, item_point
from hivecast.sim.workload import summarize

pytestmark = pytest.mark.timeout(240)


def _mean_hops(records: list) -> float:  # type: ignore[type-arg]
    return statistics.fmean(r.hops for r in records if r.success)


def test_same_seed_gives_identical_csv(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> bytes:
        cfg = RunConfig(Workload(nodes=100, lookups=80, churn=0.5, seed=seed, catalogue=30),
                        designs=("flooding", "expanding-ring", "super-peer", "central", "chord", "can", "pastry",
                                 "kademlia"))
        run_all(cfg, tmp_path / name, plots=False)
        return (tmp_path / name / "lookups.csv").read_bytes()

    first = run(7, "a")
    assert first == run(7, "b")
    assert first != run(8, "c")
    assert first.count(b"\n") > 80 * 10 * 2  # every design (CAN thrice) and both churn levels are in it


@pytest.mark.parametrize("d", [2, 3, 4])
def test_can_mean_hops_near_the_papers_average(d: int) -> None:
    n = 1000
    records = Can(Workload(nodes=n, lookups=1500, seed=3), d=d).run()
    predicted = d / 4 * n ** (1 / d)
    assert all(r.success for r in records)
    assert abs(_mean_hops(records) - predicted) / predicted < 0.15


def test_chord_mean_hops_near_half_log2_n() -> None:
    cfg = RunConfig(Workload(nodes=1000, lookups=1000, seed=3), designs=("chord",))
    result = run_one(cfg, "chord", 0.0, 1000, lambda _n: None)
    assert abs(_mean_hops(result.records) - 0.5 * math.log2(1000)) / (0.5 * math.log2(1000)) < 0.15


@pytest.mark.parametrize("b", [1, 2, 4])
def test_pastry_within_its_bound(b: int) -> None:
    n = 1000
    sim = Pastry(Workload(nodes=n, lookups=1500, seed=5), b=b)
    records = sim.run()
    assert all(r.success for r in records)
    bound = math.ceil(math.log(n, 2 ** b))
    assert _mean_hops(records) <= bound
    if b == 4:
        assert max(r.hops for r in records) <= bound


def test_central_index_resolves_in_one_hop() -> None:
    records = CentralIndex(Workload(nodes=500, lookups=300, seed=2)).run()
    assert {r.hops for r in records} == {1} and {r.messages for r in records} == {2}
    assert all(r.success for r in records)


def test_pastry_stale_owner_is_a_failure() -> None:
    sim = Pastry(Workload(nodes=300, lookups=1, seed=4))
    sim.build()
    key = item_hash(sim.seed, 0, sim.bits)
    stale = sim.owner(key)
    assert sim.lookup(0, sim.live[0], 0).success
    # A node joins right next to the key but nobody has heard of it yet: routing still ends at the
    # old owner, whose answer is now stale and must count as a failure.
    newcomer = key
    sim.ring.insert(next(i for i, x in enumerate(sim.ring) if x > key) if key < sim.ring[-1] else len(sim.ring),
                    newcomer)
    sim.alive.add(newcomer)
    assert sim.owner(key) == newcomer != stale
    assert not sim.lookup(1, sim.live[0], 0).success


def test_can_dead_zone_fails_until_takeover() -> None:
    sim = Can(Workload(nodes=300, lookups=1, seed=4), d=2)
    sim.build()
    point = item_point(sim.seed, 0, 2)
    owner = next(n for n in sim.live if any(_contains(b, point) for b in sim.nodes[n].boxes))
    source = next(n for n in sim.live if n != owner)
    sim.remove_live(owner)
    sim.nodes[owner].alive = False
    sim.clock.call_later(DETECT, lambda: sim._takeover(owner))
    assert not sim.lookup(0, source, 0).success  # nobody answers for the dead zone yet
    sim.clock.run_until(DETECT + 1)
    assert sim.lookup(1, source, 0).success  # a neighbour took the zone over


def test_structured_designs_under_churn_report_success() -> None:
    cfg = RunConfig(Workload(nodes=400, lookups=400, churn=0.2, seed=9), designs=("can", "pastry", "central"))
    for design in ("can-d2", "pastry-b4", "central"):
        records = run_one(cfg, design, 0.2, 400, lambda _n: None).records
        assert 0.9 <= sum(r.success for r in records) / len(records) <= 1.0


def test_central_index_stale_entries_are_failures() -> None:
    sim = CentralIndex(Workload(nodes=200, lookups=1, seed=4, churn=1.0))
    sim.build()
    item = sim.w.catalogue - 1
    holders = set(sim.index[sim.SERVER][item])
    sim.alive -= holders  # crashed; the index still lists them until their keep-alive lapses
    source = next(p for p in sim.live if p not in holders)
    assert not sim.lookup(0, source, item).success


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--dims", "2,0", "CAN dimensions"),
    ("--b", "9", "Pastry's b"),
    ("--b", "0", "Pastry's b"),
    ("--lookups", "5000000", "memory"),
    ("--nodes", "1", "--nodes"),
    ("--designs", "gossip", "unknown design"),
    ("--flood-lookups", "0", "--flood-lookups"),
    ("--churn", "-1", "--churn"),
])
def test_bad_parameters_fail_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                                            value: str, message: str) -> None:
    out = tmp_path / "out"
    code = main(["sim", "overlays", "--nodes", "100", "--lookups", "10", "-o", str(out), flag, value])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(OverlayParamError):
        RunConfig(Workload(nodes=100, lookups=10), dims=(0,)).validate()


def test_cli_writes_csv_summary_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "o"
    code = main(["sim", "overlays", "--nodes", "120", "--lookups", "60", "--churn", "0.2", "--seed", "3",
                 "-o", str(out), "--designs", "flooding,super-peer,central,can,pastry", "--dims", "2"])
    assert code == 0
    for name in ("lookups.csv", "summary.csv", "summary.md", "hops.png", "messages.png", "state.png",
                 "success_vs_churn.png", "load_lorenz.png"):
        assert (out / name).stat().st_size > 0, name


def test_kademlia_and_chord_on_the_shared_workload_with_churn() -> None:
    from hivecast.sim.overlays.dht import ChordOverlay, KademliaOverlay

    w = Workload(nodes=150, lookups=200, churn=1.0, seed=5, catalogue=20)
    kad = KademliaOverlay(w)
    records = kad.run()
    assert [r.index for r in records] == list(range(200))
    assert sum(r.success for r in records) / 200 >= 0.95
    assert kad.announces > 0 and len(kad.live) == 150
    chord = ChordOverlay(w)
    ring = chord.run()
    assert [r.index for r in ring] == list(range(200))
    assert sum(r.success for r in ring) / 200 >= 0.95
    assert len(chord.live) == 150 == len(chord.ring)
    # A lookup counts only if it names the key's owner among the live nodes when it finishes.
    assert all(r.hops >= 0 and r.messages >= 0 for r in ring)


def test_kademlia_converged_tables_hold_the_true_neighbourhood() -> None:
    from hivecast.sim.kademlia import KademliaSim

    sim = KademliaSim(seed=3)
    sim.build_converged(300)
    ids = sorted(h.node.table.own_int for h in sim.hosts.values())
    for host in list(sim.hosts.values())[:50]:
        table = host.node.table
        own = table.own_int
        known = {n.int_id for n in table.nodes()}
        assert own not in known
        for bucket in table.buckets:
            assert all(bucket.covers(e.node.int_id) for e in bucket.entries)
            # Every bucket is as full as the network allows (k, or every node in its range).
            in_range = sum(1 for i in ids if bucket.covers(i) and i != own)
            assert len(bucket.entries) == min(8, in_range)
        # The nodes of its own (deepest) bucket are all there: what a self-lookup finds.
        own_bucket = table.bucket_for(own)
        assert {i for i in ids if own_bucket.covers(i) and i != own} <= known
    sim.announce(10)
    assert summarize(sim.lookups(50))["success_rate"] == 1.0


def test_kademlia_protocol_join_option() -> None:
    cfg = RunConfig(Workload(nodes=120, lookups=60, seed=2, catalogue=20), designs=("kademlia",),
                    kademlia_join="protocol")
    result = run_one(cfg, "kademlia", 0.0, 60, lambda _n: None)
    assert sum(r.success for r in result.records) >= 57 and "protocol build" in result.note
    with pytest.raises(OverlayParamError):
        replace(cfg, kademlia_join="teleport").validate()
