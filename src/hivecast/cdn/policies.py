"""Eviction policies as pure classes behind one interface, byte-aware.

A store tells its policy what was inserted (`insert`), read (`hit`) and removed (`remove`), and
asks it for the next `victim()` when it needs room. Policies keep only keys, sizes and their own
bookkeeping; they never touch storage, so the Zipf benchmark and unit tests drive them directly.

- LRU: least recently used first.
- LFU: least frequently used first, ties broken by recency (O(1) frequency buckets).
- TTL: the object whose freshness ends soonest first.
- SIEVE (Zhang et al., NSDI 2024): FIFO order with a visited bit and a moving hand; hits only set
  a bit, so hot objects stay without reordering.
- S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO (10% of bytes), a main FIFO and a
  ghost FIFO of recently evicted keys; one-hit wonders leave quickly from the small queue.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Protocol


class EvictionPolicy(Protocol):
    name: str

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None: ...
    def hit(self, key: str) -> None: ...
    def remove(self, key: str) -> None: ...
    def victim(self) -> str | None:
        """Choose the next key to evict and forget it; None when empty."""
        ...
    def __len__(self) -> int: ...


class LRU:
    name = "lru"

    def __init__(self, capacity: int = 0) -> None:
        self._order: OrderedDict[str, int] = OrderedDict()

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None:
        self._order[key] = size
        self._order.move_to_end(key)

    def hit(self, key: str) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def remove(self, key: str) -> None:
        self._order.pop(key, None)

    def victim(self) -> str | None:
        if not self._order:
            return None
        key, _ = self._order.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._order)


class LFU:
    name = "lfu"

    def __init__(self, capacity: int = 0) -> None:
        self._freq: dict[str, int] = {}
        self._buckets: dict[int, OrderedDict[str, None]] = {}
        self._min = 0

    def _bucket(self, f: int) -> OrderedDict[str, None]:
        b = self._buckets.get(f)
        if b is None:
            b = self._buckets[f] = OrderedDict()
        return b

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None:
        if key in self._freq:
            self.hit(key)
            return
        self._freq[key] = 1
        self._bucket(1)[key] = None
        self._min = 1

    def hit(self, key: str) -> None:
        f = self._freq.get(key)
        if f is None:
            return
        bucket = self._buckets[f]
        del bucket[key]
        if not bucket:
            del self._buckets[f]
            if self._min == f:
                self._min = f + 1
        self._freq[key] = f + 1
        self._bucket(f + 1)[key] = None

    def remove(self, key: str) -> None:
        f = self._freq.pop(key, None)
        if f is None:
            return
        bucket = self._buckets[f]
        del bucket[key]
        if not bucket:
            del self._buckets[f]
            if self._min == f:
                self._min = min(self._buckets, default=0)

    def victim(self) -> str | None:
        if not self._freq:
            return None
        if self._min not in self._buckets:
            self._min = min(self._buckets)
        key, _ = self._buckets[self._min].popitem(last=False)
        if not self._buckets[self._min]:
            del self._buckets[self._min]
        del self._freq[key]
        return key

    def __len__(self) -> int:
        return len(self._freq)


class TTL:
    name = "ttl"

    def __init__(self, capacity: int = 0) -> None:
        self._expires: dict[str, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None:
        self._seq += 1
        self._expires[key] = (expires, self._seq)
        heapq.heappush(self._heap, (expires, self._seq, key))

    def hit(self, key: str) -> None:
        pass

    def remove(self, key: str) -> None:
        self._expires.pop(key, None)  # its heap entry goes stale and is skipped later

    def victim(self) -> str | None:
        while self._heap:
            expires, seq, key = heapq.heappop(self._heap)
            if self._expires.get(key) == (expires, seq):
                del self._expires[key]
                return key
        return None

    def __len__(self) -> int:
        return len(self._expires)


class _Node:
    __slots__ = ("key", "newer", "older", "visited")

    def __init__(self, key: str) -> None:
        self.key = key
        self.visited = False
        self.newer: _Node | None = None
        self.older: _Node | None = None


class SIEVE:
    name = "sieve"

    def __init__(self, capacity: int = 0) -> None:
        self._nodes: dict[str, _Node] = {}
        self._head: _Node | None = None  # newest
        self._tail: _Node | None = None  # oldest
        self._hand: _Node | None = None

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None:
        if key in self._nodes:
            self._nodes[key].visited = True
            return
        node = _Node(key)
        node.older = self._head
        if self._head is not None:
            self._head.newer = node
        self._head = node
        if self._tail is None:
            self._tail = node
        self._nodes[key] = node

    def hit(self, key: str) -> None:
        node = self._nodes.get(key)
        if node is not None:
            node.visited = True

    def _unlink(self, node: _Node) -> None:
        if self._hand is node:
            self._hand = node.newer
        if node.newer is not None:
            node.newer.older = node.older
        else:
            self._head = node.older
        if node.older is not None:
            node.older.newer = node.newer
        else:
            self._tail = node.newer
        node.newer = node.older = None

    def remove(self, key: str) -> None:
        node = self._nodes.pop(key, None)
        if node is not None:
            self._unlink(node)

    def victim(self) -> str | None:
        if not self._nodes:
            return None
        node = self._hand or self._tail
        while node is not None and node.visited:
            node.visited = False
            node = node.newer or self._tail
        assert node is not None
        self._hand = node.newer
        self._unlink(node)
        del self._nodes[node.key]
        return node.key

    def __len__(self) -> int:
        return len(self._nodes)


class S3FIFO:
    name = "s3fifo"
    SMALL_FRACTION = 0.1
    MAX_FREQ = 3

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._small: OrderedDict[str, int] = OrderedDict()  # key -> size, oldest first
        self._main: OrderedDict[str, int] = OrderedDict()
        self._ghost: OrderedDict[str, int] = OrderedDict()
        self._ghost_bytes = 0
        self._freq: dict[str, int] = {}
        self._small_bytes = 0

    def insert(self, key: str, size: int, *, expires: float = 0.0) -> None:
        if key in self._freq:
            self.hit(key)
            return
        self._freq[key] = 0
        if key in self._ghost:
            self._ghost_bytes -= self._ghost.pop(key)
            self._main[key] = size
        else:
            self._small[key] = size
            self._small_bytes += size

    def hit(self, key: str) -> None:
        f = self._freq.get(key)
        if f is not None and f < self.MAX_FREQ:
            self._freq[key] = f + 1

    def remove(self, key: str) -> None:
        if self._freq.pop(key, None) is None:
            return
        if key in self._small:
            self._small_bytes -= self._small.pop(key)
        else:
            self._main.pop(key, None)

    def _remember(self, key: str, size: int) -> None:
        self._ghost[key] = size
        self._ghost_bytes += size
        # The ghost queue remembers about as many bytes as the main queue holds.
        while self._ghost_bytes > self.capacity * (1 - self.SMALL_FRACTION) and self._ghost:
            _, s = self._ghost.popitem(last=False)
            self._ghost_bytes -= s

    def victim(self) -> str | None:
        while self._small or self._main:
            if self._small and (self._small_bytes >= self.capacity * self.SMALL_FRACTION or not self._main):
                key, size = self._small.popitem(last=False)
                self._small_bytes -= size
                if self._freq[key] > 0:
                    self._freq[key] = 0
                    self._main[key] = size  # promoted: seen again while on probation
                    continue
                del self._freq[key]
                self._remember(key, size)
                return key
            key, size = self._main.popitem(last=False)
            if self._freq[key] > 0:
                self._freq[key] -= 1
                self._main[key] = size  # reinserted at the tail
                continue
            del self._freq[key]
            return key
        return None

    def __len__(self) -> int:
        return len(self._freq)


POLICIES: dict[str, type[LRU] | type[LFU] | type[TTL] | type[SIEVE] | type[S3FIFO]] = {
    "lru": LRU, "lfu": LFU, "ttl": TTL, "sieve": SIEVE, "s3fifo": S3FIFO,
}


def make_policy(name: str, capacity: int) -> EvictionPolicy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown eviction policy {name!r}; choose from {', '.join(POLICIES)}") from None
    return cls(capacity)
