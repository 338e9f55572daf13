"""A virtual clock: a heap of timed callbacks run in time order (ties in scheduling order)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class Timer:
    at: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[Timer] = []
        self._seq = 0
        self.events_run = 0

    def call_at(self, at: float, callback: Callable[[], None]) -> Timer:
        self._seq += 1
        timer = Timer(max(at, self.now), self._seq, callback)
        heapq.heappush(self._heap, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.now + delay, callback)

    def step(self) -> bool:
        """Run the next timer; False when none is left."""
        while self._heap:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = timer.at
            self.events_run += 1
            timer.callback()
            return True
        return False

    def run_until(self, at: float) -> None:
        while self._heap and self._heap[0].at <= at:
            self.step()
        self.now = max(self.now, at)

    def run_while(self, condition: Callable[[], bool], *, limit: float) -> bool:
        """Run timers while `condition()` holds and virtual time stays under `limit`; True if it stopped holding."""
        while condition():
            if not self._heap or self._heap[0].at > limit:
                return False
            self.step()
        return True

    def __len__(self) -> int:
        return len(self._heap)
