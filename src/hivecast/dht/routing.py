"""The routing table: k-buckets (k = 8) over the 160-bit id space, split when the bucket holding our
own id is full, with BEP 5 liveness (good / questionable / bad) and a small replacement cache.

Sans-I/O: every method takes `now`; when a full bucket holds a questionable node the table asks the
caller to ping it (`PingNeeded`) and decides when the answer (or a timeout) comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hivecast.dht.ids import ID_BITS, NodeInfo, id_int

GOOD_FOR = 15 * 60.0  # BEP 5: good if it answered (or queried us) within the last 15 minutes
BAD_AFTER_FAILURES = 2  # consecutive unanswered queries before a node is bad


class Liveness(Enum):
    GOOD = "good"
    QUESTIONABLE = "questionable"
    BAD = "bad"


@dataclass(slots=True)
class Entry:
    node: NodeInfo
    added: float
    last_response: float | None = None  # None: never answered us (only queried us)
    last_seen: float = 0.0
    failures: int = 0

    def liveness(self, now: float) -> Liveness:
        if self.failures >= BAD_AFTER_FAILURES:
            return Liveness.BAD
        if self.last_response is not None and now - self.last_seen < GOOD_FOR:
            return Liveness.GOOD
        return Liveness.QUESTIONABLE


@dataclass(slots=True)
class Bucket:
    low: int  # inclusive
    high: int  # exclusive
    entries: list[Entry] = field(default_factory=list)
    replacements: list[NodeInfo] = field(default_factory=list)
    last_changed: float = 0.0

    def covers(self, value: int) -> bool:
        return self.low <= value < self.high

    def find(self, node: NodeInfo) -> Entry | None:
        for entry in self.entries:
            if entry.node.int_id == node.int_id:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class PingNeeded:
    """The bucket is full and `node` is questionable: ping it; `candidate` waits in the cache."""

    node: NodeInfo
    candidate: NodeInfo


class RoutingTable:
    def __init__(self, own_id: bytes, *, k: int = 8, max_replacements: int = 8) -> None:
        self.own_id = own_id
        self.own_int = id_int(own_id)
        self.k = k
        self.max_replacements = max_replacements
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS)]
        # The same buckets by depth: _chain[i] (i < last) holds the nodes sharing exactly i leading
        # bits with our id, _chain[-1] is the bucket covering our id. Only that one ever splits, so
        # a value's bucket is found from its shared prefix length instead of a scan.
        self._chain: list[Bucket] = [self.buckets[0]]

    # -- lookups ---------------------------------------------------------------------------------
    def bucket_for(self, value: int) -> Bucket:
        chain = self._chain
        shared = ID_BITS - (value ^ self.own_int).bit_length()
        return chain[shared] if shared < len(chain) else chain[-1]

    def get(self, node_id: bytes) -> Entry | None:
        value = id_int(node_id)
        for entry in self.bucket_for(value).entries:
            if entry.node.int_id == value:
                return entry
        return None

    def __len__(self) -> int:
        return sum(len(b.entries) for b in self.buckets)

    def nodes(self) -> list[NodeInfo]:
        return [e.node for b in self.buckets for e in b.entries]

    def closest(self, target: bytes | int, count: int | None = None, *, now: float | None = None,
                include_bad: bool = False) -> list[NodeInfo]:
        """The `count` (default k) known nodes closest to target by XOR, bad ones left out.

        Buckets are visited nearest first without sorting the whole table: nodes in the target's
        bucket are closer than any other; then every narrower bucket (they share the target's
        highest differing bit); then wider buckets, narrowest first.
        """
        t = target if isinstance(target, int) else id_int(target)
        count = self.k if count is None else count
        chain = self._chain
        last = len(chain) - 1
        shared = ID_BITS - (t ^ self.own_int).bit_length()
        home = shared if shared < last else last
        found: list[NodeInfo] = []
        # Nearest first: the target's own bucket; then (if that is not our own bucket) every deeper
        # bucket at once (they all differ from the target at the same bit); then shallower buckets
        # one by one, deepest first. Stop after the group that brings the count up to `count`.
        for e in chain[home].entries:
            if include_bad or e.failures < BAD_AFTER_FAILURES:
                found.append(e.node)
        if len(found) < count and home < last:
            for bucket in chain[home + 1:]:
                for e in bucket.entries:
                    if include_bad or e.failures < BAD_AFTER_FAILURES:
                        found.append(e.node)
        i = home - 1
        while len(found) < count and i >= 0:
            for e in chain[i].entries:
                if include_bad or e.failures < BAD_AFTER_FAILURES:
                    found.append(e.node)
            i -= 1
        if len(found) > 1:
            found.sort(key=lambda n: n.int_id ^ t)
        return found[:count]

    # -- updates ---------------------------------------------------------------------------------
    def heard_from(self, node: NodeInfo, now: float, *, responded: bool) -> PingNeeded | None:
        """Record that `node` answered us (responded=True) or queried us; insert it if there is room."""
        if node.int_id == self.own_int:
            return None
        bucket = self.bucket_for(node.int_id)
        entry = bucket.find(node)
        if entry is not None:
            if entry.node.addr != node.addr:
                # Same id from a new address: keep the known one until it goes bad (anti-hijack).
                if entry.liveness(now) is not Liveness.BAD:
                    return None
                entry.node = node
            entry.last_seen = now
            if responded:
                entry.last_response = now
                entry.failures = 0
            bucket.last_changed = now
            return None
        return self._insert(bucket, node, now, responded)

    def _insert(self, bucket: Bucket, node: NodeInfo, now: float, responded: bool) -> PingNeeded | None:
        while True:
            if len(bucket.entries) < self.k:
                bucket.entries.append(Entry(node, now, now if responded else None, now))
                bucket.last_changed = now
                return None
            if bucket.covers(self.own_int) and bucket.high - bucket.low > 1 and len(self.buckets) < ID_BITS:
                self._split(bucket)
                bucket = self.bucket_for(node.int_id)
                continue
            break
        if not responded:
            return None  # only nodes that answered us may displace others
        entries = bucket.entries
        # Entry.liveness inlined (this runs for every answer from a node a full bucket cannot take).
        for i, entry in enumerate(entries):
            if entry.failures >= BAD_AFTER_FAILURES:
                entries[i] = Entry(node, now, now, now)
                bucket.last_changed = now
                return None
        self._remember(bucket, node)
        oldest: Entry | None = None  # the questionable entry seen longest ago (the first of equals)
        for e in entries:
            if (e.last_response is None or now - e.last_seen >= GOOD_FOR) and (
                    oldest is None or e.last_seen < oldest.last_seen):
                oldest = e
        if oldest is not None:
            return PingNeeded(oldest.node, node)
        return None

    def _remember(self, bucket: Bucket, node: NodeInfo) -> None:
        bucket.replacements = [n for n in bucket.replacements if n.int_id != node.int_id]
        bucket.replacements.append(node)
        del bucket.replacements[: -self.max_replacements]

    def _split(self, bucket: Bucket) -> None:
        mid = (bucket.low + bucket.high) // 2
        lower, upper = Bucket(bucket.low, mid), Bucket(mid, bucket.high)
        for entry in bucket.entries:
            (lower if entry.node.int_id < mid else upper).entries.append(entry)
        for node in bucket.replacements:
            (lower if node.int_id < mid else upper).replacements.append(node)
        lower.last_changed = upper.last_changed = bucket.last_changed
        i = self.buckets.index(bucket)
        self.buckets[i : i + 1] = [lower, upper]
        own_half, far_half = (lower, upper) if self.own_int < mid else (upper, lower)
        self._chain[-1:] = [far_half, own_half]

    def failed(self, node: NodeInfo, now: float) -> None:
        """A query to `node` timed out. A bad node is replaced from the cache when one is waiting."""
        bucket = self.bucket_for(node.int_id)
        entry = bucket.find(node)
        if entry is None or entry.node.addr != node.addr:
            return
        entry.failures += 1
        if entry.liveness(now) is Liveness.BAD and bucket.replacements:
            replacement = bucket.replacements.pop()
            bucket.entries.remove(entry)
            bucket.entries.append(Entry(replacement, now, None, now))
            bucket.last_changed = now

    def remove(self, node: NodeInfo) -> None:
        bucket = self.bucket_for(node.int_id)
        entry = bucket.find(node)
        if entry is not None:
            bucket.entries.remove(entry)

    def stale_buckets(self, now: float, interval: float) -> list[Bucket]:
        """Buckets untouched for `interval` seconds: refresh them with a lookup for a random id in range."""
        return [b for b in self.buckets if now - b.last_changed >= interval]

    def questionable(self, now: float) -> list[NodeInfo]:
        return [e.node for b in self.buckets for e in b.entries if e.liveness(now) is Liveness.QUESTIONABLE]

    def counts(self, now: float) -> dict[str, int]:
        out = {"good": 0, "questionable": 0, "bad": 0}
        for b in self.buckets:
            for e in b.entries:
                out[e.liveness(now).value] += 1
        return out
