"""Iterative Kademlia lookups as a state machine (no I/O, no clock).

The caller asks `next_queries(now)` for the nodes to query (at most `alpha` outstanding; a query that
has been silent for `slow_after` seconds stops holding its slot, so one slow node does not stall the
lookup), and reports each reply (`on_reply`) or timeout (`on_failure`). The lookup is done when the
`k` closest nodes it knows of, dead ones aside, have all answered.

Hops: every node carries the number of sequential queries it took to learn of it (seeds from the
routing table are hop 1). The lookup's hop count is that of the closest node that answered.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hivecast.dht.ids import Address, NodeInfo, id_int


class State(Enum):
    NEW = 0
    IN_FLIGHT = 1
    ANSWERED = 2
    FAILED = 3


@dataclass(slots=True)
class Candidate:
    node: NodeInfo
    distance: int
    hops: int
    state: State = State.NEW
    sent_at: float = 0.0
    token: bytes | None = None


@dataclass(slots=True)
class LookupStats:
    queries: int = 0
    replies: int = 0
    failures: int = 0
    started: float = 0.0
    finished: float | None = None


@dataclass(slots=True)
class Lookup:
    target: bytes
    method: str  # "find_node", "get_peers" or "get" (BEP 44)
    k: int = 8
    alpha: int = 3
    slow_after: float = 1.0
    max_candidates: int = 100
    max_queries: int = 200
    own_id: bytes | None = None
    stats: LookupStats = field(default_factory=LookupStats)
    peers: set[Address] = field(default_factory=set)
    value: Any = None  # BEP 44 get: the item, once a node returned one that hashes to the target
    _target_int: int = 0
    _sorted: list[Candidate] = field(default_factory=list)  # by distance
    _keys: list[int] = field(default_factory=list)  # distances, parallel to _sorted
    _by_id: dict[int, Candidate] = field(default_factory=dict)
    _flying: dict[int, Candidate] = field(default_factory=dict)  # in flight, by node id
    _done: bool = False

    def __post_init__(self) -> None:
        self._target_int = id_int(self.target)

    @classmethod
    def start(cls, target: bytes, method: str, seeds: list[NodeInfo], now: float, **options: object) -> Lookup:
        lookup = cls(target, method, **options)  # type: ignore[arg-type]
        lookup.stats.started = now
        lookup._add(seeds, hops=1)
        return lookup

    # -- bookkeeping -----------------------------------------------------------------------------
    def _add(self, nodes: list[NodeInfo], hops: int) -> None:
        own = id_int(self.own_id) if self.own_id is not None else None
        for node in nodes:
            if node.int_id in self._by_id or node.int_id == own:
                continue
            d = node.int_id ^ self._target_int
            if len(self._sorted) >= self.max_candidates:
                if d >= self._keys[-1]:
                    continue
                dropped = self._sorted.pop()
                self._keys.pop()
                del self._by_id[dropped.node.int_id]
                self._flying.pop(dropped.node.int_id, None)
            cand = Candidate(node, d, hops)
            i = bisect.bisect_left(self._keys, d)
            self._keys.insert(i, d)
            self._sorted.insert(i, cand)
            self._by_id[node.int_id] = cand

    def add_candidates(self, nodes: list[NodeInfo], hops: int = 1) -> None:
        """Feed in nodes learnt outside the lookup's own replies (a late bootstrap answer)."""
        self._add(nodes, hops)

    def _find(self, node: NodeInfo) -> Candidate | None:
        cand = self._by_id.get(node.int_id)
        if cand is None or cand.node.addr != node.addr:
            return None
        return cand

    # -- driving ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def next_queries(self, now: float) -> list[NodeInfo]:
        """Nodes to query now; marks them in flight. Empty when waiting or done."""
        if self._done:
            return []
        busy = sum(1 for c in self._flying.values() if now - c.sent_at < self.slow_after)
        out: list[NodeInfo] = []
        live_seen = 0
        for cand in self._sorted:
            if cand.state is State.FAILED:
                continue
            live_seen += 1
            if live_seen > self.k:
                break
            if cand.state is State.NEW and busy < self.alpha and self.stats.queries < self.max_queries:
                cand.state = State.IN_FLIGHT
                cand.sent_at = now
                self._flying[cand.node.int_id] = cand
                busy += 1
                self.stats.queries += 1
                out.append(cand.node)
        self._check_done(now)
        return out

    def _check_done(self, now: float) -> None:
        live = 0
        for cand in self._sorted:
            if cand.state is State.FAILED:
                continue
            if cand.state is not State.ANSWERED:
                if cand.state is State.NEW and self.stats.queries >= self.max_queries:
                    continue  # out of query budget: unqueried nodes no longer hold the lookup open
                return
            live += 1
            if live >= self.k:
                break
        self._done = True
        self.stats.finished = now

    def on_reply(self, node: NodeInfo, now: float, *, nodes: list[NodeInfo] | None = None,
                 values: list[Address] | None = None, token: bytes | None = None) -> None:
        cand = self._find(node)
        if cand is None or cand.state in (State.ANSWERED, State.FAILED) or self._done:
            return
        cand.state = State.ANSWERED
        self._flying.pop(cand.node.int_id, None)
        cand.token = token
        self.stats.replies += 1
        if values:
            self.peers.update(values)
        if nodes:
            self._add(nodes, cand.hops + 1)
        self._check_done(now)

    def on_failure(self, node: NodeInfo, now: float) -> None:
        cand = self._find(node)
        if cand is None or cand.state is not State.IN_FLIGHT or self._done:
            return
        cand.state = State.FAILED
        self._flying.pop(cand.node.int_id, None)
        self.stats.failures += 1
        self._check_done(now)

    def finish(self, now: float) -> None:
        if not self._done:
            self._done = True
            self.stats.finished = now

    # -- results ---------------------------------------------------------------------------------
    def closest(self, count: int | None = None) -> list[Candidate]:
        """The closest nodes that answered, nearest first (with their write tokens)."""
        count = self.k if count is None else count
        return [c for c in self._sorted if c.state is State.ANSWERED][:count]

    @property
    def hops(self) -> int:
        best = self.closest(1)
        return best[0].hops if best else 0

    def in_flight(self) -> list[NodeInfo]:
        return [c.node for c in self._flying.values()]

    def slow_deadline(self, now: float) -> float | None:
        """When an in-flight query next stops holding its slot (the caller should step then)."""
        times = [c.sent_at + self.slow_after for c in self._flying.values() if c.sent_at + self.slow_after > now]
        return min(times) if times else None
