"""Gnutella-style flooding on a random graph, with a TTL and duplicate suppression (a node forwards
a query id once, to every neighbour but the one it came from), and expanding-ring search (floods
with TTL 1, 2, 3 ... until one finds a copy).

Items are copied onto random nodes with square-root replication. A crashed node takes its copies
and its links with it; its neighbours each replace the lost link with a random live node after the
keep-alive period; a fresh node links to `degree / 2` random live nodes and brings one copy of a
Zipf-drawn item.
"""

from __future__ import annotations

from hivecast.sim.overlays.base import DETECT, Overlay
from hivecast.sim.overlays.workload import Workload
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord


class Flooding(Overlay):
    design = "flooding"

    def __init__(self, workload: Workload, *, degree: int = 6, ttl: int | None = None) -> None:
        super().__init__(workload)
        if degree < 2:
            raise ValueError("degree must be at least 2")
        self.degree = degree
        self.ttl = ttl
        self.links: dict[int, set[int]] = {}
        self.holds: dict[int, set[int]] = {}  # node -> items
        self.holders: dict[int, set[int]] = {}  # item -> nodes
        self._serial = 0
        self._join_items = workload.items("join-items") if workload.churn > 0 else []

    # -- membership -------------------------------------------------------------------------------
    def _link(self, a: int, b: int) -> None:
        if a != b:
            self.links[a].add(b)
            self.links[b].add(a)

    def _new_node(self) -> int:
        node = self._serial
        self._serial += 1
        self.links[node] = set()
        self.holds[node] = set()
        self.add_live(node)
        return node

    def _give(self, node: int, item: int) -> None:
        self.holds[node].add(item)
        self.holders.setdefault(item, set()).add(node)

    def build(self) -> None:
        for _ in range(self.w.nodes):
            self._new_node()
        # Each node opens degree/2 links to random others: mean degree `degree`.
        for node in range(self.w.nodes):
            for _ in range(self.degree // 2):
                self._link(node, self.rng.randrange(self.w.nodes))
        placement = derive_rng(self.seed, "placement")
        for item, count in enumerate(self.w.copies()):
            for node in placement.sample(range(self.w.nodes), count):
                self._give(node, item)
        if self.ttl is None:
            self.ttl = self.calibrate()

    def calibrate(self, sample: int = 300, target: float = 0.99) -> int:
        """The smallest TTL at which `target` of a pilot sample of lookups find a copy."""
        rng = derive_rng(self.seed, "calibrate")
        depths = []
        items = self.w.items("calibrate")[:sample]
        for item in items:
            depths.append(self._nearest(self.live[rng.randrange(len(self.live))], item))
        depths.sort()
        return max(1, depths[min(len(depths) - 1, int(target * len(depths)))])

    def _nearest(self, source: int, item: int) -> int:
        holders = self.holders.get(item, set())
        if source in holders:
            return 0
        seen = {source}
        frontier = [source]
        depth = 0
        while frontier:
            depth += 1
            nxt = []
            for u in frontier:
                for v in self.links[u]:
                    if v not in seen:
                        if v in holders:
                            return depth
                        seen.add(v)
                        nxt.append(v)
            frontier = nxt
        return 64

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        for item in self.holds.pop(victim):
            self.holders[item].discard(victim)
        neighbours = self.links.pop(victim)
        for v in neighbours:
            self.links[v].discard(victim)
        self.clock.call_later(DETECT, lambda: self._relink(neighbours))

    def _relink(self, nodes: set[int]) -> None:
        for v in sorted(nodes):
            if v in self.links:
                self._link(v, self.live[self.rng.randrange(len(self.live))])

    def join_one(self) -> None:
        node = self._new_node()
        for _ in range(self.degree // 2):
            self._link(node, self.live[self.rng.randrange(len(self.live))])
        if self._join_items:
            self._give(node, self._join_items[node % len(self._join_items)])

    # -- search -----------------------------------------------------------------------------------
    def flood(self, source: int, item: int, ttl: int) -> tuple[int, int, int, float]:
        """One flood: (depth of the nearest copy or -1, query messages, hit replies, latency)."""
        holders = self.holders.get(item, set())
        if source in holders:
            return 0, 0, 0, 0.0
        seen = {source}
        frontier = [(source, -1)]
        messages = 0
        replies = 0
        found = -1
        latency = 0.0
        for depth in range(1, ttl + 1):
            nxt: list[tuple[int, int]] = []
            for u, parent in frontier:
                for v in self.links[u]:
                    if v == parent:
                        continue
                    messages += 1
                    self.load[v] += 1
                    if v in seen:
                        continue  # duplicate: dropped, not forwarded
                    seen.add(v)
                    if v in holders:
                        replies += depth  # the hit travels back along the query's path
                        if found < 0:
                            found = depth
                            latency = sum(self.delay() for _ in range(2 * depth))
                    nxt.append((v, u))
            frontier = nxt
            if not frontier:
                break
        return found, messages, replies, latency

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        assert self.ttl is not None
        found, messages, replies, latency = self.flood(source, item, self.ttl)
        return self.record(index, source, item, found >= 0, max(found, 0), messages + replies, latency)

    def state_sizes(self) -> list[int]:
        return [len(self.links[n]) for n in self.live]


class ExpandingRing(Flooding):
    design = "expanding-ring"

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        assert self.ttl is not None
        total = 0
        elapsed = 0.0
        for ttl in range(1, self.ttl + 1):
            found, messages, replies, latency = self.flood(source, item, ttl)
            total += messages + replies
            if found >= 0:
                return self.record(index, source, item, True, found, total, elapsed + latency)
            elapsed += 2 * ttl * self.latency.base + 1.0  # wait out the ring before widening it
        return self.record(index, source, item, False, 0, total, elapsed)
