"""CAN (Ratnasamy et al., 2001): a d-dimensional unit torus split into zones, one owner per zone.

Join: a fresh node picks a random point, routes to its owner and takes half of that zone (split
across its longest side). Routing is greedy: forward to the neighbour whose zone is nearest the
key's point. Leave (a crash): after the keep-alive period the live neighbour with the smallest
volume takes the zone over (and may then hold more than one zone, as the paper allows until
background reassignment, which is not modelled). Until then the dead zone's keys have no owner and
their lookups fail; a message to a dead neighbour costs a time-out and the next-best neighbour is
tried. A lookup succeeds only when the answering node is alive and its zone holds the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hivecast.sim.overlays.base import DETECT, TIMEOUT, Overlay
from hivecast.sim.overlays.workload import Workload, item_point
from hivecast.sim.workload import LookupRecord

MEMO_ITEMS = 200  # the most popular items (Zipf ranks 1..200, about 2/3 of lookups) have routes remembered

Box = tuple[tuple[float, ...], tuple[float, ...]]


def _contains(box: Box, p: tuple[float, ...]) -> bool:
    lo, hi = box
    return all(lo[i] <= p[i] < hi[i] for i in range(len(p)))


def _dist2(box: Box, p: tuple[float, ...]) -> float:
    """Squared distance on the torus from a point to a box (0 exactly when the box holds it).

    Coordinates are in [0, 1): a point below the box is `lo - x` away one way round and
    `x - hi + 1` the other; above it, `x - hi` and `lo - x + 1`."""
    lo, hi = box
    total = 0.0
    for low, high, x in zip(lo, hi, p, strict=True):
        if x < low:
            a = low - x
            b = x - high + 1.0
        elif x >= high:
            a = low - x + 1.0
            b = x - high
        else:
            continue
        m = a if a < b else b
        total += m * m
    return total


def _abut(box_a: Box, box_b: Box) -> bool:
    """Zones are neighbours when they touch along one dimension and overlap along all the others."""
    (alo, ahi), (blo, bhi) = box_a, box_b
    touching = 0
    for i in range(len(alo)):
        if alo[i] < bhi[i] and blo[i] < ahi[i]:
            continue
        if ahi[i] % 1.0 == blo[i] or bhi[i] % 1.0 == alo[i]:
            touching += 1
        else:
            return False
    return touching == 1 or (touching == 0 and len(alo) > 0 and box_a != box_b)


def _volume(box: Box) -> float:
    lo, hi = box
    v = 1.0
    for i in range(len(lo)):
        v *= hi[i] - lo[i]
    return v


@dataclass(slots=True)
class CanNode:
    boxes: list[Box]
    neighbours: set[int] = field(default_factory=set)
    alive: bool = True

    def volume(self) -> float:
        return sum(_volume(b) for b in self.boxes)

    def dist2(self, p: tuple[float, ...]) -> float:
        return min(_dist2(b, p) for b in self.boxes)


class Can(Overlay):
    def __init__(self, workload: Workload, *, d: int = 2, uniform: bool = True) -> None:
        if d < 1:
            raise ValueError("CAN needs d >= 1 dimensions")
        self.design = f"can-d{d}"
        super().__init__(workload)
        self.d = d
        self.uniform = uniform
        self.nodes: dict[int, CanNode] = {}
        self._serial = 0
        self.hop_limit = 64 + 8 * d * round(workload.nodes ** (1.0 / d))
        self._memo: dict[int, dict[int, int]] = {}  # item -> {node: next hop, or -1: owns the point}

    def _adjacent(self, a: int, b: int) -> bool:
        return any(_abut(x, y) for x in self.nodes[a].boxes for y in self.nodes[b].boxes)

    def _route(self, start: int, p: tuple[float, ...], memo_key: int | None = None
               ) -> tuple[int | None, int, int, float]:
        """Greedy routing: (owner or None, hops, messages, latency). Each step forwards to the
        neighbour whose zone is nearest the point (ties: the lower id), if it is nearer than ours;
        a dead neighbour costs a time-out and the next nearest is tried.

        A step's choice depends only on the zones and on which nodes are alive, so for the most
        popular items (`memo_key`, the item, below MEMO_ITEMS) the steps that met no dead neighbour
        are remembered per node until the next join, crash or takeover, and replayed."""
        nodes = self.nodes
        load = self.load
        base = self.latency.base
        rate = 1.0 / self.latency.jitter if self.latency.jitter > 0 else 0.0
        draw = self.lat_rng.expovariate
        current = start
        hops = 0
        messages = 0
        latency = 0.0
        memo = None
        if memo_key is not None and memo_key < MEMO_ITEMS:
            memo = self._memo.get(memo_key)
            if memo is None:
                memo = self._memo[memo_key] = {}
        while hops <= self.hop_limit:
            if memo is not None:
                step = memo.get(current)
                if step is not None:
                    if step < 0:
                        return current, hops, messages, latency
                    current = step
                    messages += 1
                    load[current] += 1
                    latency += base + draw(rate) if rate else base
                    hops += 1
                    continue
            node = nodes[current]
            boxes = node.boxes
            here = _dist2(boxes[0], p) if len(boxes) == 1 else min(_dist2(b, p) for b in boxes)
            if here == 0.0:
                if memo is not None:
                    memo[current] = -1
                return current, hops, messages, latency
            options: list[tuple[float, int]] = []
            for n in node.neighbours:
                other = nodes.get(n)
                if other is None:
                    continue
                ob = other.boxes
                options.append((_dist2(ob[0], p) if len(ob) == 1 else min(_dist2(b, p) for b in ob), n))
            if not options:
                return None, hops, messages, latency
            best = min(options)
            if best[0] >= here:
                return None, hops, messages, latency
            chosen = -1
            if nodes[best[1]].alive:
                chosen = best[1]
                messages += 1
                if memo is not None:
                    memo[current] = chosen
            else:
                for dist, n in sorted(options):
                    if dist >= here:
                        break
                    messages += 1
                    if not nodes[n].alive:
                        latency += TIMEOUT
                        continue
                    chosen = n
                    break
                if chosen < 0:
                    return None, hops, messages, latency
            current = chosen
            load[current] += 1
            latency += base + draw(rate) if rate else base
            hops += 1
        return None, hops, messages, latency

    # -- membership -------------------------------------------------------------------------------
    def _new_id(self) -> int:
        self._serial += 1
        return self._serial - 1

    def build(self) -> None:
        first = self._new_id()
        self.nodes[first] = CanNode([((0.0,) * self.d, (1.0,) * self.d)])
        self.add_live(first)
        while len(self.live) < self.w.nodes:
            self.join_one()

    def join_one(self) -> None:
        self._memo.clear()
        p = tuple(self.rng.random() for _ in range(self.d))
        start = self.live[self.rng.randrange(len(self.live))]
        owner, _, _, _ = self._route(start, p)
        if owner is None:
            return  # the point sits in a zone awaiting takeover: the newcomer retries later
        # The paper's "more uniform partitioning": split the largest zone among the owner and its
        # neighbours, which keeps zones near equal and hops near the grid's (d/4)·N^(1/d).
        if self.uniform:
            pool = [owner, *(n for n in self.nodes[owner].neighbours if self.nodes[n].alive)]
            owner = max(pool, key=lambda n: (self.nodes[n].volume(), -n))
        old = self.nodes[owner]
        bi = next((i for i, b in enumerate(old.boxes) if _contains(b, p)), None)
        if bi is None:
            bi = max(range(len(old.boxes)), key=lambda i: _volume(old.boxes[i]))
        lo, hi = old.boxes[bi]
        dim = max(range(self.d), key=lambda i: (hi[i] - lo[i], -i))
        mid = (lo[dim] + hi[dim]) / 2
        low_half: Box = (lo, tuple(mid if i == dim else hi[i] for i in range(self.d)))
        high_half: Box = (tuple(mid if i == dim else lo[i] for i in range(self.d)), hi)
        mine, theirs = (low_half, high_half) if p[dim] < mid else (high_half, low_half)
        old.boxes[bi] = theirs
        new = self._new_id()
        self.nodes[new] = CanNode([mine])
        self.add_live(new)
        candidates = old.neighbours | {owner}
        for n in list(old.neighbours):
            if not self._adjacent(owner, n):
                old.neighbours.discard(n)
                self.nodes[n].neighbours.discard(owner)
        for n in candidates:
            if n in self.nodes and self._adjacent(new, n):
                self.nodes[new].neighbours.add(n)
                self.nodes[n].neighbours.add(new)

    def crash_one(self) -> None:
        victim = self.live[self.rng.randrange(len(self.live))]
        self.remove_live(victim)
        self.nodes[victim].alive = False
        self._memo.clear()
        self.clock.call_later(DETECT, lambda: self._takeover(victim))

    def _takeover(self, dead: int) -> None:
        node = self.nodes[dead]
        live = sorted((self.nodes[n].volume(), n) for n in node.neighbours if self.nodes[n].alive)
        if not live:
            self.clock.call_later(DETECT, lambda: self._takeover(dead))
            return
        taker = live[0][1]
        heir = self.nodes[taker]
        heir.boxes.extend(node.boxes)
        del self.nodes[dead]
        self._memo.clear()
        for n in node.neighbours:
            if n not in self.nodes:
                continue
            self.nodes[n].neighbours.discard(dead)
            if n != taker and self._adjacent(n, taker):
                self.nodes[n].neighbours.add(taker)
                heir.neighbours.add(n)
        heir.neighbours.discard(dead)

    # -- lookups ----------------------------------------------------------------------------------
    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        p = item_point(self.seed, item, self.d)
        owner, hops, messages, latency = self._route(source, p, item)
        ok = owner is not None and self.nodes[owner].alive and any(_contains(b, p) for b in self.nodes[owner].boxes)
        if owner is not None and owner != source:
            messages += 1  # the owner's answer straight back to the source
            latency += self.delay()
        return self.record(index, source, item, ok, hops, messages, latency)

    def state_sizes(self) -> list[int]:
        return [len(self.nodes[n].neighbours) for n in self.live]
