"""The event bus: typed publish/subscribe between capabilities inside a node (Redis spans nodes later).

Publishers never wait for subscribers: each subscription has a bounded queue, and a subscriber that
falls behind loses the oldest events and sees `dropped` grow.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, bus: InProcessBus, pattern: str, maxlen: int) -> None:
        self._bus = bus
        self.pattern = pattern
        self._queue: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.closed = False

    def matches(self, topic: str) -> bool:
        if self.pattern.endswith("*"):
            return topic.startswith(self.pattern[:-1])
        return topic == self.pattern

    def _deliver(self, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Event:
        while not self._queue:
            if self.closed:
                raise EOFError("subscription closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventBus(Protocol):
    def publish(self, topic: str, data: dict[str, Any] | None = None) -> None: ...
    def subscribe(self, pattern: str, *, maxlen: int = 1024) -> Subscription: ...


class InProcessBus:
    """The embedded default: subscribers in this process, patterns `topic` or `prefix.*`."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    def publish(self, topic: str, data: dict[str, Any] | None = None) -> None:
        event = Event(topic, data or {})
        for sub in self._subs:
            if sub.matches(topic):
                sub._deliver(event)

    def subscribe(self, pattern: str, *, maxlen: int = 1024) -> Subscription:
        sub = Subscription(self, pattern, maxlen)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
