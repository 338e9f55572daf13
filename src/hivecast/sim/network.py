"""A virtual network: endpoints by address, per-message latency from a model, random loss, and dead
endpoints that silently swallow what is sent to them (a crashed node, not a polite leave)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from hivecast.sim.clock import VirtualClock

Receiver = Callable[[Any, Hashable], None]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """One-way delay: `base` plus an exponential tail with mean `jitter` (seconds)."""

    base: float = 0.010
    jitter: float = 0.020

    def sample(self, rng: random.Random) -> float:
        return self.base + (rng.expovariate(1.0 / self.jitter) if self.jitter > 0 else 0.0)


class VirtualNetwork:
    def __init__(self, clock: VirtualClock, rng: random.Random, *, latency: LatencyModel | None = None,
                 loss: float = 0.0) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        self.clock = clock
        self.rng = rng
        self.latency = latency or LatencyModel()
        self.loss = loss
        self._endpoints: dict[Hashable, Receiver] = {}
        self.sent = 0
        self.delivered = 0
        self.lost = 0
        self.to_dead = 0
        self.received_by: Counter[Hashable] = Counter()  # load per endpoint
        # Called with (src, dst, payload, sent_at) for a message that reached a dead endpoint.
        self.on_dead: Callable[[Hashable, Hashable, Any, float], None] | None = None

    def attach(self, addr: Hashable, receiver: Receiver) -> None:
        self._endpoints[addr] = receiver

    def detach(self, addr: Hashable) -> None:
        self._endpoints.pop(addr, None)

    def alive(self, addr: Hashable) -> bool:
        return addr in self._endpoints

    def send(self, src: Hashable, dst: Hashable, payload: Any) -> None:
        self.sent += 1
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.lost += 1
            return
        lat = self.latency
        # The same draws, in the same order, as LatencyModel.sample (inlined: the hottest path).
        delay = lat.base + rng.expovariate(1.0 / lat.jitter) if lat.jitter > 0 else lat.base
        clock = self.clock
        clock.post(clock.now + delay, self._deliver, (src, dst, payload, clock.now))

    def _deliver(self, src: Hashable, dst: Hashable, payload: Any, sent_at: float) -> None:
        receiver = self._endpoints.get(dst)
        if receiver is None:
            self.to_dead += 1
            if self.on_dead is not None:
                self.on_dead(src, dst, payload, sent_at)
            return
        self.delivered += 1
        self.received_by[dst] += 1
        receiver(payload, src)
