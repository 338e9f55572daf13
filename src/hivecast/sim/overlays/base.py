"""What every overlay of this package shares: the run loop that interleaves the workload's lookups
and churn instants on the shared virtual clock, latency from the shared latency model, and the
figures each design reports (records, per-node load, per-node routing state).

A lookup walks hop by hop inside one call: each hop draws a one-way delay from the latency model and
each message sent to a crashed node costs a time-out; lookups take well under a second of virtual
time while they are spaced seconds apart, so walking them atomically changes nothing measured.
Crashes, failure detection and repairs are timers on the virtual clock.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable

from hivecast.sim.clock import VirtualClock
from hivecast.sim.network import LatencyModel
from hivecast.sim.overlays.workload import Workload
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord

TIMEOUT = 1.0  # seconds a sender waits for an answer from a node before it gives up on it
DETECT = 30.0  # seconds before neighbours notice a crash and repair (keep-alive period)


class Overlay:
    design = "overlay"

    def __init__(self, workload: Workload, *, latency: LatencyModel | None = None) -> None:
        self.w = workload
        self.seed = workload.seed
        self.clock = VirtualClock()
        self.latency = latency or LatencyModel()
        self.lat_rng = derive_rng(workload.seed, self.design, "latency")
        self.rng = derive_rng(workload.seed, self.design, "nodes")
        self.src_rng = derive_rng(workload.seed, "sources")
        self.load: Counter[int] = Counter()  # messages handled per node
        self.live: list[int] = []  # live node ids, for picking sources and victims
        self._pos: dict[int, int] = {}

    # -- to be provided by each design ------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def crash_one(self) -> None:
        raise NotImplementedError

    def join_one(self) -> None:
        raise NotImplementedError

    def lookup(self, index: int, source: int, item: int) -> LookupRecord:
        raise NotImplementedError

    def state_sizes(self) -> list[int]:
        raise NotImplementedError

    def loads(self) -> list[int]:
        """Messages handled by each live node."""
        return [self.load.get(n, 0) for n in self.live]

    # -- shared -----------------------------------------------------------------------------------
    def built(self) -> None:
        """The overlay is built: move its (millions of long-lived) objects out of the garbage
        collector's full passes, which otherwise rescan them over and over during the lookups.
        `run_one` unfreezes them when the design is done. Results do not depend on it."""
        gc.freeze()

    def delay(self) -> float:
        return self.latency.sample(self.lat_rng)

    def record(self, index: int, source: int, item: int, ok: bool, hops: int, messages: int,
               latency: float) -> LookupRecord:
        return LookupRecord(self.design, index, len(self.live), self.w.churn, str(source), str(item), ok, hops,
                            messages, round(latency, 6))

    def remove_live(self, node: int) -> None:
        # Swap-remove keeps this O(1); the order stays deterministic for a given seed.
        i = self._pos.pop(node)
        last = self.live.pop()
        if last != node:
            self.live[i] = last
            self._pos[last] = i

    def add_live(self, node: int) -> None:
        self._pos[node] = len(self.live)
        self.live.append(node)

    def run(self, progress: Callable[[int], None] | None = None) -> list[LookupRecord]:
        self.build()
        self.built()
        items = self.w.items()
        times = self.w.times()
        churn = self.w.churn_times()
        ci = 0
        records: list[LookupRecord] = []
        for i, (at, item) in enumerate(zip(times, items, strict=True)):
            while ci < len(churn) and churn[ci] <= at:
                self.clock.run_until(churn[ci])
                self.crash_one()
                self.join_one()
                ci += 1
            self.clock.run_until(at)
            source = self.live[self.src_rng.randrange(len(self.live))]
            records.append(self.lookup(i, source, item))
            if progress is not None:
                progress(1)
        return records
