"""Pastry (Rowstron and Druschel, 2001): ids are strings of base-2^b digits; each node keeps a leaf
set (the L/2 numerically nearest ids on each side) and a routing table whose row r holds, for each
digit value, a node sharing r digits of prefix with it. A key goes to the live node numerically
closest to it, in at most ceil(log_{2^b} N) routing-table hops plus a leaf-set hop.

The network starts in the state the join protocol converges to (each table slot filled with a node
of that prefix, as `ChordSim.build` does for fingers). A fresh node takes a complete table and leaf
set from the live ring and announces itself to its leaf set at once. A crash is noticed by the dead
node's leaf-set neighbours after the keep-alive period, which then repair their leaf sets; stale
routing-table slots are only found when used (a time-out, then the slot is dropped and the node
routes on). A lookup succeeds only if the node that accepts the key is its true owner among the
live nodes: a stale owner is a failure.
"""

from __future__ import annotations

import bisect
import math

from hivecast.sim.overlays.base import DETECT, TIMEOUT, Overlay
from hivecast.sim.overlays.workload import Workload, item_hash
from hivecast.sim.workload import LookupRecord


class Pastry(Overlay):
    def __init__(self, workload: Workload, *, b: int = 4, leaf: int = 16) -> None:
        if not 1 <= b <= 8:
            raise ValueError("Pastry's b must be in 1..8")
        self.design = f"pastry-b{b}"
        super().__init__(workload)
        self.b = b
        self.half = max(1, leaf // 2)
        self.digits = math.ceil(32 / b)
        self.bits = self.digits * b
        self.space = 1 << self.bits
        self.ring: list[int] = []  # sorted live ids
        self.alive: set[int] = set()
        self.leaves: dict[int, list[int]] = {}
        self.table: dict[int, list[dict[int, int]]] = {}

    # -- id arithmetic ----------------------------------------------------------------------------
    def _digit(self, x: int, r: int) -> int:
        return (x >> (self.bits - (r + 1) * self.b)) & ((1 << self.b) - 1)

    def _prefix(self, x: int, y: int) -> int:
        diff = x ^ y
        return self.digits if diff == 0 else (self.bits - diff.bit_length()) // self.b

    def _dist(self, x: int, y: int) -> int:
        d = (x - y) % self.space
        return min(d, self.space - d)

    def _offset(self, frm: int, to: int) -> int:
        d = (to - frm) % self.space
        return d - self.space if d > self.space // 2 else d

    def owner(self, key: int) -> int:
        i = bisect.bisect_left(self.ring, key)
        a = self.ring[i % len(self.ring)]
        c = self.ring[i - 1]
        return min((a, c), key=lambda x: (self._dist(x, key), x))

    # -- state ------------------------------------------------------------------------------------
    def _leafset(self, node: int) -> list[int]:
        n = len(self.ring)
        i = bisect.bisect_left(self.ring, node)
        out = []
        for k in range(1, min(self.half, (n - 1) // 2 + 1) + 1):
            out.append(self.ring[(i + k) % n])
            out.append(self.ring[(i - k) % n])
        if n - 1 <= 2 * self.half:
            out = [x for x in self.ring if x != node]
        return sorted(set(out) - {node})

    def _build_table(self, node: int) -> list[dict[int, int]]:
        rows: list[dict[int, int]] = []
        for r in range(self.digits):
            shift = self.bits - (r + 1) * self.b
            prefix = node >> (shift + self.b) if r else 0
            row: dict[int, int] = {}
            mine = self._digit(node, r)
            for c in range(1 << self.b):
                if c == mine:
                    continue
                lo = ((prefix << self.b) | c) << shift
                i = bisect.bisect_left(self.ring, lo)
                j = bisect.bisect_left(self.ring, lo + (1 << shift))
                if i < j:
                    row[c] = self.ring[i + (node % (j - i))]  # any node of that prefix will do
            rows.append(row)
            own_lo = (node >> shift) << shift
            if bisect.bisect_left(self.ring, own_lo + (1 << shift)) - bisect.bisect_left(self.ring, own_lo) <= 1:
                break
        return rows

    def _add(self, node: int) -> None:
        bisect.insort(self.ring, node)
        self.alive.add(node)
        self.add_live(node)

    def _new_id(self) -> int:
        while True:
            x = self.rng.getrandbits(self.bits)
            if x not in self.alive and x not in self.leaves:
                return x

    def build(self) -> None:
        for _ in range(self.w.nodes):
            self._add(self._new_id())
        for node in self.ring:
            self.leaves[node] = self._leafset(node)
            self.table[node] = self._build_table(node)

    def join_one(self) -> None:
        node = self._new_id()
        self._add(node)
        self.leaves[node] = self._leafset(node)
        self.table[node] = self._build_table(node)
        for x in self.leaves[node]:  # the newcomer announces itself to its leaf set
            if x in self.alive:
                self.leaves[x] = self._leafset(x)

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        self.alive.discard(victim)
        self.ring.pop(bisect.bisect_left(self.ring, victim))
        self.clock.call_later(DETECT, lambda: self._repair(victim))

    def _repair(self, dead: int) -> None:
        """Leaf-set neighbours of a dead node notice it and rebuild their leaf sets."""
        if not self.ring:
            return
        i = bisect.bisect_left(self.ring, dead)
        n = len(self.ring)
        for k in range(-self.half - 1, self.half + 1):
            x = self.ring[(i + k) % n]
            self.leaves[x] = self._leafset(x)
        self.leaves.pop(dead, None)
        self.table.pop(dead, None)

    # -- routing ----------------------------------------------------------------------------------
    def _next(self, node: int, key: int) -> int | None:
        """The next hop for `key` at `node`, or None when `node` takes the key itself."""
        leaves = self.leaves[node]
        offsets = [self._offset(node, x) for x in leaves]
        ko = self._offset(node, key)
        if leaves and min([*offsets, 0]) <= ko <= max([*offsets, 0]):
            best = min([node, *leaves], key=lambda x: (self._dist(x, key), x))
            return None if best == node else best
        r = self._prefix(node, key)
        rows = self.table[node]
        if r < len(rows):
            hop = rows[r].get(self._digit(key, r))
            if hop is not None:
                return hop
        # The rare case: any known node at least as long a prefix match and numerically closer.
        here = self._dist(node, key)
        known = [*leaves, *(v for row in rows for v in row.values())]
        better = [x for x in known if self._prefix(x, key) >= r and self._dist(x, key) < here]
        return min(better, key=lambda x: (self._dist(x, key), x)) if better else None

    def _forget(self, node: int, dead: int) -> None:
        if dead in self.leaves[node]:
            self.leaves[node] = [x for x in self.leaves[node] if x != dead]
        for row in self.table[node]:
            for c, v in list(row.items()):
                if v == dead:
                    del row[c]

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        key = item_hash(self.seed, item, self.bits)
        current = source
        hops = 0
        messages = 0
        latency = 0.0
        while hops <= 4 * self.digits + 16:
            nxt = self._next(current, key)
            if nxt is None:
                break
            messages += 1
            if nxt not in self.alive:
                latency += TIMEOUT
                self._forget(current, nxt)
                continue
            self.load[nxt] += 1
            latency += self.delay()
            current = nxt
            hops += 1
        ok = current == self.owner(key)
        if current != source:
            messages += 1
            latency += self.delay()
        return self.record(index, source, item, ok, hops, messages, latency)

    def state_sizes(self) -> list[int]:
        return [len(self.leaves[n]) + sum(len(row) for row in self.table[n]) for n in self.live]

    def bound(self, nodes: int) -> int:
        return math.ceil(math.log(nodes, 1 << self.b))
