"""Gnutella-style flooding on a random graph, with a TTL and duplicate suppression (a node forwards
a query id once, to every neighbour but the one it came from), and expanding-ring search (floods
with TTL 1, 2, 3 ... until one finds a copy).

Items are copied onto random nodes with square-root replication. A crashed node takes its copies
and its links with it; its neighbours each replace the lost link with a random live node after the
keep-alive period; a fresh node links to `degree / 2` random live nodes and brings one copy of a
Zipf-drawn item.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hivecast.sim.overlays.base import DETECT, Overlay
from hivecast.sim.overlays.workload import Workload
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord


@dataclass(slots=True)
class _Flood:
    dist: np.ndarray  # depth at which each node was first reached (-1: not reached)
    messages: list[int]  # query messages sent by the nodes of each depth 0, 1, ...
    targets: list[np.ndarray]  # their receivers (one entry per message)


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
        self._adj: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._stamp = np.zeros(0, dtype=np.int64)
        cap = workload.nodes + len(workload.churn_times())
        self._load = np.zeros(cap, dtype=np.int64)  # messages received per node

    # -- membership -------------------------------------------------------------------------------
    def _link(self, a: int, b: int) -> None:
        self._adj = None
        if a != b:
            self.links[a].add(b)
            self.links[b].add(a)

    def _new_node(self) -> int:
        node = self._serial
        self._serial += 1
        self._adj = None
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
        if source in self.holders.get(item, ()):
            return 0
        hits = self._hit_depths(self._bfs(source, 64), self._holders_array(item), 64)
        return int(hits.min()) if len(hits) else 64

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        for item in self.holds.pop(victim):
            self.holders[item].discard(victim)
        neighbours = self.links.pop(victim)
        self._adj = None
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
    # A flood is computed on arrays: the graph as CSR adjacency (rebuilt only after the graph changed)
    # and a level-by-level BFS. The counts are the message-level flood's exactly: a node first reached
    # at depth d < TTL forwards the query to every neighbour but the one it came from (duplicates
    # are counted as messages and as load, and dropped), so the query messages sent by depth-d nodes
    # are sum(degree) - (number of depth-d nodes, when d > 0), and every holder first reached at
    # depth <= TTL sends a hit of `depth` messages back along the query's path.
    def _invalidate(self) -> None:
        self._adj = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._adj is None:
            cap = self._serial
            order = sorted(self.links)
            deg = np.zeros(cap, dtype=np.int64)
            deg[order] = [len(self.links[n]) for n in order]
            indptr = np.zeros(cap + 1, dtype=np.int64)
            np.cumsum(deg, out=indptr[1:])
            total = int(indptr[-1])
            indices = np.fromiter(itertools.chain.from_iterable(self.links[n] for n in order), dtype=np.int64,
                                  count=total)
            self._adj = (indptr, indices, deg)
        return self._adj

    def _bfs(self, source: int, ttl: int) -> _Flood:
        """Levels of a flood from `source` up to depth `ttl` (the depth-ttl level is reached but does
        not forward): distances, query messages per sending depth, and each depth's message targets."""
        indptr, indices, deg = self._arrays()
        cap = len(deg)
        dist = np.full(cap, -1, dtype=np.int64)
        dist[source] = 0
        parent = np.full(cap, -1, dtype=np.int64)
        stamp = self._stamp
        if len(stamp) < cap:
            stamp = self._stamp = np.zeros(cap, dtype=np.int64)
        frontier = np.array([source], dtype=np.int64)
        messages: list[int] = []
        targets: list[np.ndarray] = []
        for depth in range(ttl):
            lens = deg[frontier]
            total = int(lens.sum())
            if total == 0:
                break
            starts = indptr[frontier]
            offsets = np.cumsum(lens) - lens
            senders = np.repeat(frontier, lens)
            nb = indices[np.repeat(starts - offsets, lens) + np.arange(total)]
            if depth > 0:
                keep = nb != parent[senders]  # not back to the node it came from
                nb = nb[keep]
                senders = senders[keep]
            messages.append(len(nb))
            targets.append(nb)
            fresh = dist[nb] < 0
            cand = nb[fresh]
            if len(cand) == 0:
                break
            # First copy of each newly reached node: mark positions, keep where the mark survived.
            pos = np.arange(len(cand))
            stamp[cand[::-1]] = pos[::-1]
            first = stamp[cand] == pos
            frontier = cand[first]
            dist[frontier] = depth + 1
            parent[frontier] = senders[fresh][first]
        return _Flood(dist, messages, targets)

    def _holders_array(self, item: int) -> np.ndarray:
        return np.fromiter(self.holders.get(item, ()), dtype=np.int64)

    @staticmethod
    def _hit_depths(flood: _Flood, holders: np.ndarray, ttl: int) -> np.ndarray:
        d = flood.dist[holders] if len(holders) else holders
        return d[(d > 0) & (d <= ttl)]

    def _add_load(self, flood: _Flood, weights: list[int]) -> None:
        for targets, weight in zip(flood.targets, weights, strict=False):
            if weight and len(targets):
                counts = np.bincount(targets, minlength=len(self._load))
                self._load[: len(counts)] += weight * counts[: len(self._load)]

    def flood(self, source: int, item: int, ttl: int) -> tuple[int, int, int, float]:
        """One flood: (depth of the nearest copy or -1, query messages, hit replies, latency)."""
        if source in self.holders.get(item, ()):
            return 0, 0, 0, 0.0
        flood = self._bfs(source, ttl)
        hits = self._hit_depths(flood, self._holders_array(item), ttl)
        self._add_load(flood, [1] * ttl)
        found = int(hits.min()) if len(hits) else -1
        latency = sum(self.delay() for _ in range(2 * found)) if found > 0 else 0.0
        return found, sum(flood.messages[:ttl]), int(hits.sum()), latency

    def _outcome(self, flood: _Flood, holders: np.ndarray) -> tuple[int, int, list[int]]:
        """(found depth or -1, messages, load weight per sending depth) of one lookup."""
        assert self.ttl is not None
        ttl = self.ttl
        hits = self._hit_depths(flood, holders, ttl)
        found = int(hits.min()) if len(hits) else -1
        return found, sum(flood.messages[:ttl]) + int(hits.sum()), [1] * ttl

    def _record(self, index: int, source: int, item: int, found: int, messages: int) -> LookupRecord:
        latency = sum(self.delay() for _ in range(2 * found)) if found > 0 else 0.0
        return self.record(index, source, item, found >= 0, max(found, 0), messages, latency)

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        assert self.ttl is not None
        if source in self.holders.get(item, ()):
            return self._record(index, source, item, 0, 0)
        flood = self._bfs(source, self.ttl)
        found, messages, weights = self._outcome(flood, self._holders_array(item))
        self._add_load(flood, weights)
        return self._record(index, source, item, found, messages)

    def run(self, progress: Callable[[int], None] | None = None) -> list[LookupRecord]:
        if self.w.churn > 0:
            return super().run(progress)
        # A static graph: a flood's levels depend on its source only, so each source is flooded once
        # for all of its lookups (the counts are those of flooding once per lookup; the latency
        # draws still happen in lookup order).
        self.build()
        self.built()
        assert self.ttl is not None
        items = self.w.items()
        sources = [self.live[self.src_rng.randrange(len(self.live))] for _ in items]
        by_source: dict[int, list[int]] = {}
        for i, source in enumerate(sources):
            by_source.setdefault(source, []).append(i)
        outcome: list[tuple[int, int]] = [(0, 0)] * len(items)
        for source, indices in by_source.items():
            flood: _Flood | None = None
            total = [0] * self.ttl
            for i in indices:
                item = items[i]
                if source in self.holders.get(item, ()):
                    continue  # found at home: no flood, no messages
                if flood is None:
                    flood = self._bfs(source, self.ttl)
                found, messages, weights = self._outcome(flood, self._holders_array(item))
                outcome[i] = (found, messages)
                total = [a + b for a, b in zip(total, weights, strict=True)]
            if flood is not None:
                self._add_load(flood, total)
            if progress is not None:
                progress(len(indices))
        return [self._record(i, sources[i], items[i], *outcome[i]) for i in range(len(items))]

    def loads(self) -> list[int]:
        return [int(self._load[n]) for n in self.live]

    def state_sizes(self) -> list[int]:
        return [len(self.links[n]) for n in self.live]


class ExpandingRing(Flooding):
    """Floods with TTL 1, 2, ... up to the flooding TTL until one finds a copy. Ring t repeats the
    first t levels of the same flood, so one BFS gives every ring's counts: a message sent at depth
    d is sent again in every ring t > d."""

    design = "expanding-ring"

    def _outcome(self, flood: _Flood, holders: np.ndarray) -> tuple[int, int, list[int]]:
        assert self.ttl is not None
        ttl = self.ttl
        hits = self._hit_depths(flood, holders, ttl)
        found = int(hits.min()) if len(hits) else -1
        rings = found if found > 0 else ttl
        sent = [flood.messages[d] if d < len(flood.messages) else 0 for d in range(ttl)]
        total = 0
        for t in range(1, rings + 1):
            total += sum(sent[:t]) + int(hits[hits <= t].sum())
        return found, total, [max(0, rings - d) for d in range(ttl)]

    def _record(self, index: int, source: int, item: int, found: int, messages: int) -> LookupRecord:
        assert self.ttl is not None
        if found == 0:
            return self.record(index, source, item, True, 0, messages, 0.0)
        rings = found if found > 0 else self.ttl + 1
        elapsed = sum(2 * t * self.latency.base + 1.0 for t in range(1, rings))  # each ring waited out
        if found < 0:
            return self.record(index, source, item, False, 0, messages, elapsed)
        latency = sum(self.delay() for _ in range(2 * found))
        return self.record(index, source, item, True, found, messages, elapsed + latency)
