"""A virtual clock: a heap of timed callbacks run in time order (ties in scheduling order).

Heap entries are plain lists `[at, seq, callback, args]`, so the heap compares them in C (a
dataclass with generated ordering costs a Python call per comparison, which dominated large
simulations). `seq` is unique, so a comparison never reaches the callback. A cancelled entry has
its callback set to None and is skipped when it comes up.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Timer(list[Any]):
    """A scheduled callback: `[at, seq, callback, args]`; `cancel()` makes it a no-op."""

    __slots__ = ()

    @property
    def at(self) -> float:
        return float(self[0])

    @property
    def cancelled(self) -> bool:
        return self[2] is None

    def cancel(self) -> None:
        self[2] = None


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[list[Any]] = []
        self._seq = 0
        self.events_run = 0

    def call_at(self, at: float, callback: Callable[..., None], *args: Any) -> Timer:
        self._seq += 1
        timer = Timer((at if at > self.now else self.now, self._seq, callback, args))
        heapq.heappush(self._heap, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer:
        return self.call_at(self.now + delay, callback, *args)

    def keep_earliest(self, current: Timer | None, at: float | None, callback: Callable[..., None],
                      *args: Any) -> Timer | None:
        """One wake-up per node: the timer that stands, `current` or a new one at `at` if that is
        earlier (or `current` was cancelled); `at` None asks for nothing new."""
        if at is None or (current is not None and not current.cancelled and current.at <= at):
            return current
        if current is not None:
            current.cancel()
        return self.call_at(at, callback, *args)

    def post(self, at: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        """Schedule without a cancellable handle (the network's deliveries: the cheapest path)."""
        self._seq += 1
        heapq.heappush(self._heap, [at if at > self.now else self.now, self._seq, callback, args])

    def step(self) -> bool:
        """Run the next timer; False when none is left."""
        heap = self._heap
        while heap:
            entry = heapq.heappop(heap)
            callback = entry[2]
            if callback is None:
                continue
            self.now = entry[0]
            self.events_run += 1
            callback(*entry[3])
            return True
        return False

    def run_until(self, at: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= at:
            entry = pop(heap)
            callback = entry[2]
            if callback is None:
                continue
            self.now = entry[0]
            self.events_run += 1
            callback(*entry[3])
        if at > self.now:
            self.now = at

    def run_while(self, condition: Callable[[], bool], *, limit: float) -> bool:
        """Run timers while `condition()` holds and virtual time stays under `limit`; True if it stopped holding."""
        heap = self._heap
        while condition():
            if not heap or heap[0][0] > limit:
                return False
            self.step()
        return True

    def next_at(self) -> float | None:
        """When the next live timer is due (None: nothing scheduled)."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return float(heap[0][0]) if heap else None

    def __len__(self) -> int:
        return len(self._heap)
