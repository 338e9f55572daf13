"""Hybrid overlays: super-peers (leaves register their items with one super-peer, which answers for
them; queries flood among super-peers only) and a central index (Napster, a tracker: one server
knows every copy, the lower bound on messages).

Only ordinary peers churn (super-peers and the index server are chosen among stable machines). A
crashed peer's entries stay in the index until its keep-alive lapses, so an answer may name only
dead holders: that is a failure, never a success.
"""

from __future__ import annotations

import math
from collections import Counter

from hivecast.sim.overlays.base import DETECT, Overlay
from hivecast.sim.overlays.workload import Workload
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord


class _Indexed(Overlay):
    """Peers holding items, with an index (per super-peer or central) that lags crashes by DETECT."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(workload)
        self.alive: set[int] = set()
        self.holds: dict[int, set[int]] = {}
        self.home: dict[int, int] = {}  # peer -> index node it registered with
        self.index: dict[int, dict[int, set[int]]] = {}  # index node -> item -> registered peers
        self.churnable: list[int] = []
        self.item_index: dict[int, set[int]] = {}  # item -> index nodes that have had an entry for it
        self._serial = 0
        self._join_items = workload.items("join-items") if workload.churn > 0 else []

    def _index_nodes(self) -> list[int]:
        raise NotImplementedError

    def _home_for(self, peer: int) -> int:
        raise NotImplementedError

    def _new_peer(self) -> int:
        peer = self._serial
        self._serial += 1
        self.alive.add(peer)
        self.holds[peer] = set()
        self.add_live(peer)
        return peer

    def _register(self, peer: int, item: int) -> None:
        self.holds[peer].add(item)
        self.index[self.home[peer]].setdefault(item, set()).add(peer)
        self.item_index.setdefault(item, set()).add(self.home[peer])

    def build(self) -> None:
        for _ in range(self.w.nodes):
            self._new_peer()
        for node in self._index_nodes():
            self.index[node] = {}
        stable = set(self._index_nodes())
        for peer in range(self.w.nodes):
            self.home[peer] = peer if peer in stable else self._home_for(peer)
        self.churnable = [p for p in range(self.w.nodes) if p not in stable]
        placement = derive_rng(self.seed, "placement")
        for item, count in enumerate(self.w.copies()):
            for peer in placement.sample(range(self.w.nodes), count):
                self._register(peer, item)

    def crash_one(self) -> None:
        i = self.rng.randrange(len(self.churnable))
        victim = self.churnable[i]
        self.churnable[i] = self.churnable[-1]
        self.churnable.pop()
        self.alive.discard(victim)
        self.remove_live(victim)
        self.clock.call_later(DETECT, lambda: self._expire(victim))

    def _expire(self, peer: int) -> None:
        entries = self.index[self.home.pop(peer)]
        for item in self.holds.pop(peer):
            entries[item].discard(peer)

    def join_one(self) -> None:
        peer = self._new_peer()
        self.home[peer] = self._home_for(peer)
        self.churnable.append(peer)
        if self._join_items:
            self._register(peer, self._join_items[peer % len(self._join_items)])

    def _answer(self, node: int, item: int) -> set[int]:
        return self.index[node].get(item, set())


class CentralIndex(_Indexed):
    design = "central"
    SERVER = -1

    def _index_nodes(self) -> list[int]:
        return [self.SERVER]

    def _home_for(self, peer: int) -> int:
        return self.SERVER

    def build(self) -> None:
        super().build()
        self.home.pop(self.SERVER, None)

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        self.load[self.SERVER] += 1
        holders = self._answer(self.SERVER, item)
        ok = item in self.holds.get(source, ()) or any(h in self.alive for h in holders)
        return self.record(index, source, item, ok, 1, 2, self.delay() + self.delay())

    def state_sizes(self) -> list[int]:
        # Peers keep one address (the server); the server keeps an entry per registered copy.
        return [1 for _ in self.live] + [sum(len(s) for s in self.index[self.SERVER].values())]


class SuperPeer(_Indexed):
    design = "super-peer"

    def __init__(self, workload: Workload, *, leaves_per_super: int = 20, degree: int = 6) -> None:
        super().__init__(workload)
        self.supers = list(range(max(1, workload.nodes // leaves_per_super)))
        self.degree = degree
        self.links: dict[int, set[int]] = {s: set() for s in self.supers}
        self.ttl = max(1, math.ceil(math.log(max(2, len(self.supers))) / math.log(max(2, degree - 1))) + 1)
        self._flood_levels: dict[int, tuple[dict[int, int], list[int], list[list[int]]]] = {}
        self._floods: Counter[tuple[int, int]] = Counter()  # (start, last depth) -> floods

    def _index_nodes(self) -> list[int]:
        return self.supers

    def _home_for(self, peer: int) -> int:
        return self.supers[self.rng.randrange(len(self.supers))]

    def build(self) -> None:
        super().build()
        for s in self.supers:
            for _ in range(self.degree // 2):
                t = self.supers[self.rng.randrange(len(self.supers))]
                if t != s:
                    self.links[s].add(t)
                    self.links[t].add(s)

    def _levels(self, start: int) -> tuple[dict[int, int], list[int], list[list[int]]]:
        """The flood among super-peers from `start` (the super-peer graph never changes): each
        super-peer's depth, cumulative query messages after each depth, and each depth's receivers
        (duplicates included). A node forwards to every neighbour but the one it came from."""
        levels = self._flood_levels.get(start)
        if levels is not None:
            return levels
        depth_of = {start: 0}
        frontier = [(start, -1)]
        cumulative = [0]
        targets: list[list[int]] = [[]]
        for depth in range(1, self.ttl + 1):
            nxt: list[tuple[int, int]] = []
            sent: list[int] = []
            for u, parent in frontier:
                for v in self.links[u]:
                    if v == parent:
                        continue
                    sent.append(v)
                    if v in depth_of:
                        continue
                    depth_of[v] = depth
                    nxt.append((v, u))
            cumulative.append(cumulative[-1] + len(sent))
            targets.append(sent)
            frontier = nxt
        levels = self._flood_levels[start] = (depth_of, cumulative, targets)
        return levels

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        if item in self.holds.get(source, ()):
            return self.record(index, source, item, True, 0, 0, 0.0)
        start = self.home[source]
        hops0 = 0 if start == source else 1
        self.load[start] += 1
        replies = 0
        found = -1
        alive = self.alive
        hit = self._answer(start, item)
        if any(h in alive for h in hit):
            found = 0
        elif hit:
            replies += 1  # a stale answer: names only crashed peers
        messages = hops0
        if found < 0:
            # Flood level by level until the depth where a live holder is first named (that depth
            # is finished: every super-peer at it answers), or the TTL. The levels are the same for
            # every flood from `start`; only the super-peers indexing the item need looking at.
            depth_of, cumulative, _ = self._levels(start)
            answers: list[int] = []
            for v in self.item_index.get(item, ()):
                d = depth_of.get(v, 0)
                if d == 0:
                    continue  # unreachable within the TTL, or the start itself
                answer = self.index[v].get(item)
                if not answer:
                    continue
                answers.append(d)
                if (found < 0 or d < found) and any(h in alive for h in answer):
                    found = d
            last = found if found > 0 else self.ttl
            messages += cumulative[last]
            replies += sum(d + hops0 for d in answers if d <= last)
            self._floods[(start, last)] += 1
        hops = hops0 + max(found, 0)
        latency = sum(self.delay() for _ in range(2 * hops))
        return self.record(index, source, item, found >= 0, hops, messages + replies, latency)

    def loads(self) -> list[int]:
        load = Counter(self.load)
        for (start, last), count in self._floods.items():
            targets = self._levels(start)[2]
            for depth in range(1, last + 1):
                for v in targets[depth]:
                    load[v] += count
        return [load.get(n, 0) for n in self.live]

    def state_sizes(self) -> list[int]:
        sizes = []
        for n in self.live:
            if n in self.links:
                sizes.append(len(self.links[n]) + sum(len(s) for s in self.index[n].values()))
            else:
                sizes.append(1)
        return sizes
