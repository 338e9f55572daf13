"""Chord and Kademlia on the shared overlay workload.

The DHT issue's simulations (`hivecast.sim.chord`, `hivecast.sim.kademlia`: the real node cores on
the virtual clock and network, message by message) driven by the same workload as every other
design: the Zipf catalogue, lookups from random live nodes at the workload's instants, and churn as
the workload's Poisson crash + join pairs. Unlike the designs that walk a lookup inside one call,
these lookups are events on the clock: a lookup starts at its instant, runs concurrently with the
others and with maintenance, and is judged when it finishes.

- Kademlia: every item's holders (square-root replication, the same placement as the unstructured
  designs) announce it (get_peers + announce_peer, k = 8 closest nodes store the peer) before the
  lookups start, and again every 15 minutes of virtual time, as BitTorrent clients do. A lookup is a
  get_peers for the item's info-hash; it succeeds when it returns the address of at least one live
  holder (an answer that names only crashed holders is a failure). A fresh node joins through the
  protocol (BEP 5 bootstrap through a random live node) and announces the item it brings.
- Chord: an item's key is its hash on the 32-bit ring; a lookup succeeds only if the owner it names
  is the key's true owner among the live nodes when it finishes (a stale owner is a failure). With
  churn, the stabilization timers run on every node; a fresh node joins through the protocol.

Hops are the cores' own (Kademlia: rounds of queries to the closest answering node; Chord: nodes
asked). Messages are the lookup's queries plus the replies it received (Chord: requests and replies
of each step, and the owner's confirming ping).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from hivecast.chord.node import ChordConfig
from hivecast.chord.node import LookupDone as ChordDone
from hivecast.dht.ids import Address
from hivecast.dht.node import DhtConfig
from hivecast.dht.node import LookupDone as KadDone
from hivecast.sim.chord import ChordSim
from hivecast.sim.chord import _Host as ChordHost
from hivecast.sim.kademlia import KademliaSim
from hivecast.sim.kademlia import _Host as KadHost
from hivecast.sim.overlays.base import Overlay
from hivecast.sim.overlays.workload import Workload, item_hash
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord

REANNOUNCE_EVERY = 15 * 60.0
DRAIN = 300.0  # virtual seconds after the last lookup instant for stragglers to finish


@dataclass(slots=True)
class _Started:
    index: int
    source: int
    item: int
    at: float


class _EventDriven(Overlay):
    """Lookups as events: each starts at its instant and is recorded when its core reports it."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(workload)
        self._records: list[LookupRecord | None] = []
        self._progress: Callable[[int], None] | None = None
        self._items: list[int] = []
        self._times: list[float] = []
        self._t0 = 0.0
        self._started: dict[tuple[int, int], _Started] = {}  # (node, lookup id) -> lookup

    def start_lookup(self, source: int, item: int) -> int:
        """Start the core's lookup (without flushing its messages yet); its id."""
        raise NotImplementedError

    def flush(self, source: int) -> None:
        """Hand what the source's core queued to the network (after the lookup is registered, so a
        lookup that finishes at once still finds its record)."""
        raise NotImplementedError

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:  # pragma: no cover - not used
        raise NotImplementedError("event-driven designs record lookups when they finish")

    def run(self, progress: Callable[[int], None] | None = None) -> list[LookupRecord]:
        self.build()
        self.built()
        self._progress = progress
        self._items = self.w.items()
        self._times = self.w.times()
        self._records = [None] * len(self._items)
        self._t0 = t0 = self.clock.now  # the workload's instants count from the end of the build
        for at in self.w.churn_times():
            self.clock.call_at(t0 + at, self._churn_pair)
        if self._items:
            self.clock.call_at(t0 + self._times[0], self._start, 0)
        self.clock.run_until(t0 + self.w.duration + DRAIN)
        for key, _started in sorted(self._started.items(), key=lambda kv: kv[1].index):
            # Its source crashed before it finished (or it ran past the drain): a failure.
            self._finish(key, False, 0, 0, self.clock.now)
        return [r for r in self._records if r is not None]

    def _churn_pair(self) -> None:
        self.crash_one()
        self.join_one()

    def _start(self, i: int) -> None:
        source = self.live[self.src_rng.randrange(len(self.live))]
        item = self._items[i]
        lookup_id = self.start_lookup(source, item)
        self._started[(source, lookup_id)] = _Started(i, source, item, self.clock.now)
        self.flush(source)
        if i + 1 < len(self._items):
            self.clock.call_at(self._t0 + self._times[i + 1], self._start, i + 1)

    def _finish(self, key: tuple[int, int], ok: bool, hops: int, messages: int, at: float) -> None:
        started = self._started.pop(key, None)
        if started is None:
            return
        self._records[started.index] = self.record(started.index, started.source, started.item, ok, hops, messages,
                                                   at - started.at)
        if self._progress is not None:
            self._progress(1)


class KademliaOverlay(_EventDriven):
    design = "kademlia"

    def __init__(self, workload: Workload, *, join: str = "converged") -> None:
        super().__init__(workload)
        if join not in ("converged", "protocol"):
            raise ValueError("join is 'converged' or 'protocol'")
        self.join = join
        # The rate limiter tracks 256 sender addresses per node instead of 4,096: at 10,000 nodes the
        # larger tables held most of the run's memory, and no simulated node ever sends a node enough
        # queries to be limited (`rate_limited` stays 0 either way), so no answer changes.
        self.sim = KademliaSim(seed=workload.seed, config=DhtConfig(query_timeout=2.0, slow_after=0.5,
                                                                    max_tracked_addresses=256))
        self.sim.rng = derive_rng(workload.seed, self.design, "joins")
        self.sim.on_done = self._done
        self.clock = self.sim.clock
        self.addr_of: dict[int, Address] = {}
        self.node_of: dict[Address, int] = {}
        self.holders: dict[int, set[int]] = {}  # item -> live holders
        self.holds: dict[int, set[int]] = {}  # holder -> items
        self.keys: list[bytes] = [item_hash(workload.seed, i, 160).to_bytes(20, "big")
                                  for i in range(workload.catalogue)]
        self._join_items = workload.items("join-items") if workload.churn > 0 else []
        self.announces = 0
        self._t0 = float("inf")  # until the lookups start, every announce is renewed

    def _adopt(self, addr: Address) -> int:
        node = len(self.addr_of)
        self.addr_of[node] = addr
        self.node_of[addr] = node
        self.add_live(node)
        return node

    def build(self) -> None:
        if self.join == "converged":
            self.sim.build_converged(self.w.nodes)
        else:
            self.sim.build(self.w.nodes)
        for addr in self.sim.hosts:
            self._adopt(addr)
        placement = derive_rng(self.seed, "placement")
        for item, count in enumerate(self.w.copies()):
            for node in placement.sample(range(self.w.nodes), count):
                self._give(node, item)
        # Every holder announces its items once, spread over the first seconds, then every 15 min.
        pairs = sorted((node, item) for item, nodes in self.holders.items() for node in nodes)
        step = 5.0 / max(1, len(pairs))
        for i, (node, item) in enumerate(pairs):
            self.clock.call_later(i * step, self._announce, node, item, True)
        self.clock.run_until(self.clock.now + 5.0 + 60.0)

    def _give(self, node: int, item: int) -> None:
        self.holders.setdefault(item, set()).add(node)
        self.holds.setdefault(node, set()).add(item)

    def _announce(self, node: int, item: int, again: bool) -> None:
        host = self.sim.hosts.get(self.addr_of[node])
        if host is None or node not in self.holders.get(item, ()):
            return
        host.node.start_lookup(self.keys[item], self.clock.now, method="get_peers", announce_port=host.addr[1])
        self.announces += 1
        self.sim.flush(host)
        if again and self.clock.now + REANNOUNCE_EVERY < self._t0 + self.w.duration:
            self.clock.call_later(REANNOUNCE_EVERY, self._announce, node, item, True)

    def _done(self, host: KadHost, event: KadDone) -> bool:
        node = self.node_of.get(host.addr)
        if node is None:
            return True  # a join's own lookups, during the build
        key = (node, event.lookup_id)
        if key not in self._started:
            return True  # an announce: nothing to record
        lookup = event.lookup
        started = self._started[key]
        live = {self.addr_of[h] for h in self.holders.get(started.item, ())}
        ok = bool(live & lookup.peers)
        self._finish(key, ok, lookup.hops, lookup.stats.queries + lookup.stats.replies, self.clock.now)
        return True

    def start_lookup(self, source: int, item: int) -> int:
        host = self.sim.hosts[self.addr_of[source]]
        return host.node.start_lookup(self.keys[item], self.clock.now, method="get_peers")

    def flush(self, source: int) -> None:
        self.sim.flush(self.sim.hosts[self.addr_of[source]])

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        self.sim.kill(self.addr_of[victim])
        for item in self.holds.pop(victim, ()):
            self.holders[item].discard(victim)

    def join_one(self) -> None:
        host = self.sim.add_node(bootstrap=True, wait=False)
        node = self._adopt(host.addr)
        if self._join_items:
            item = self._join_items[node % len(self._join_items)]
            self._give(node, item)
            # Announce once the bootstrap lookups have had time to fill the routing table.
            self.clock.call_later(30.0, self._announce, node, item, True)

    def state_sizes(self) -> list[int]:
        return [len(self.sim.hosts[self.addr_of[n]].node.table) for n in self.live]

    def loads(self) -> list[int]:
        return [self.sim.net.received_by.get(self.addr_of[n], 0) for n in self.live]


class ChordOverlay(_EventDriven):
    design = "chord"

    def __init__(self, workload: Workload, *, stabilize_every: float = 30.0) -> None:
        super().__init__(workload)
        maintain = workload.churn > 0
        # With churn: stabilize, check the predecessor and fix one finger every `stabilize_every`
        # seconds (the Chord paper's experiments stabilize every 30 s on average); at rest the
        # installed ring is exact and needs no timers.
        self.config = ChordConfig(bits=32, stabilize_every=stabilize_every, fix_fingers_every=stabilize_every,
                                  check_predecessor_every=stabilize_every, maintenance=maintain)
        self.sim = ChordSim(seed=workload.seed, config=self.config)
        self.sim.rng = derive_rng(workload.seed, self.design, "joins")
        self.sim.on_done = self._done
        self.clock = self.sim.clock
        self.addr_of: dict[int, tuple[str, int]] = {}
        self.node_of: dict[tuple[str, int], int] = {}
        self.ring: list[int] = []  # sorted live ids: the ground truth for owners

    def _adopt(self, addr: tuple[str, int]) -> int:
        node = len(self.addr_of)
        self.addr_of[node] = addr
        self.node_of[addr] = node
        self.add_live(node)
        bisect.insort(self.ring, self.sim.hosts[addr].ref.id)
        return node

    def build(self) -> None:
        self.sim.build(self.w.nodes)
        for addr in self.sim.hosts:
            self._adopt(addr)

    def owner(self, key: int) -> int:
        return self.ring[bisect.bisect_left(self.ring, key) % len(self.ring)]

    def _done(self, host: ChordHost, event: ChordDone) -> bool:
        key = (self.node_of[host.ref.addr], event.lookup_id)
        started = self._started.get(key)
        if started is None:
            return True
        lookup = event.lookup
        target = item_hash(self.seed, started.item, self.config.bits)
        ok = lookup.ok and lookup.owner is not None and lookup.owner.id == self.owner(target)
        self._finish(key, ok, lookup.hops, 2 * lookup.steps, self.clock.now)
        return True

    def start_lookup(self, source: int, item: int) -> int:
        host = self.sim.hosts[self.addr_of[source]]
        return host.node.start_lookup(item_hash(self.seed, item, self.config.bits), self.clock.now)

    def flush(self, source: int) -> None:
        self.sim.flush(self.sim.hosts[self.addr_of[source]])

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        addr = self.addr_of[victim]
        ident = self.sim.hosts[addr].ref.id
        self.ring.pop(bisect.bisect_left(self.ring, ident))
        self.sim.kill(addr)

    def join_one(self) -> None:
        host = self.sim.join_node()
        self._adopt(host.ref.addr)

    def state_sizes(self) -> list[int]:
        out = []
        for n in self.live:
            node = self.sim.hosts[self.addr_of[n]].node
            out.append(len({f.id for f in node.fingers if f is not None} | {s.id for s in node.successors}))
        return out

    def loads(self) -> list[int]:
        return [self.sim.hosts[self.addr_of[n]].node.handled for n in self.live]
