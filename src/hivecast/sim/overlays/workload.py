"""The one workload every overlay runs: N nodes, a Zipf catalogue, lookups from random nodes spread
over a span of virtual time, and churn (crash + fresh join pairs) at a rate per hour of virtual time.

Everything derives from one seed through labelled random streams, so every design sees the same
item sequence and the same churn instants, and a rerun repeats exactly.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass

from hivecast.sim.rng import derive_rng

MAX_NODES = 100_000
# Every lookup keeps one record in memory per design (about 200 bytes each): this bounds the run.
MAX_LOOKUPS = 1_000_000


class OverlayParamError(ValueError):
    """A parameter outside what the simulator accepts; raised before anything runs."""


@dataclass(frozen=True, slots=True)
class Workload:
    nodes: int
    lookups: int
    churn: float = 0.0  # fraction of the nodes replaced per hour of virtual time
    seed: int = 1
    catalogue: int = 1000
    zipf: float = 0.8
    duration: float = 3600.0  # virtual seconds the lookups are spread over
    replicas: float = 3.0  # unstructured designs: copies per item on average (square-root allocation)

    def validate(self) -> None:
        if not 2 <= self.nodes <= MAX_NODES:
            raise OverlayParamError(f"--nodes must be between 2 and {MAX_NODES:,} (got {self.nodes})")
        if not 1 <= self.lookups <= MAX_LOOKUPS:
            raise OverlayParamError(
                f"--lookups must be between 1 and {MAX_LOOKUPS:,} (every lookup keeps a record in memory; got {self.lookups:,})")
        if not 0.0 <= self.churn <= 10.0:
            raise OverlayParamError(f"--churn is a fraction of nodes per hour in [0, 10] (got {self.churn})")
        if self.catalogue < 1 or self.zipf < 0 or self.duration <= 0 or self.replicas < 1:
            raise OverlayParamError("catalogue >= 1, zipf >= 0, duration > 0 and replicas >= 1 are required")

    # -- the catalogue ----------------------------------------------------------------------------
    def popularity(self) -> list[float]:
        weights = [1.0 / (rank ** self.zipf) for rank in range(1, self.catalogue + 1)]
        total = sum(weights)
        return [w / total for w in weights]

    def items(self, label: str = "items") -> list[int]:
        """The item asked by each lookup, Zipf-distributed (item 0 is the most popular)."""
        cumulative = list(itertools.accumulate(self.popularity()))
        rng = derive_rng(self.seed, label)
        last = self.catalogue - 1
        return [min(bisect.bisect_left(cumulative, rng.random()), last) for _ in range(self.lookups)]

    def copies(self) -> list[int]:
        """Square-root replication (Cohen and Shenker): copies of item i proportional to sqrt(p_i),
        at least one each, about `replicas` per item on average."""
        roots = [math.sqrt(p) for p in self.popularity()]
        budget = self.replicas * self.catalogue
        scale = budget / sum(roots)
        return [max(1, min(self.nodes, round(r * scale))) for r in roots]

    def times(self) -> list[float]:
        step = self.duration / self.lookups
        return [(i + 0.5) * step for i in range(self.lookups)]

    def churn_times(self) -> list[float]:
        """Instants of crash + join pairs: a Poisson process at churn * N per hour."""
        rate = self.churn * self.nodes / 3600.0
        if rate <= 0:
            return []
        rng = derive_rng(self.seed, "churn")
        out: list[float] = []
        t = rng.expovariate(rate)
        while t < self.duration:
            out.append(t)
            t += rng.expovariate(rate)
        return out


def item_hash(seed: int, item: int, bits: int) -> int:
    digest = hashlib.sha256(f"hivecast-item:{seed}:{item}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - bits)


def item_point(seed: int, item: int, d: int) -> tuple[float, ...]:
    """A key's point in CAN's unit torus (d coordinates of 32 bits each)."""
    digest = hashlib.sha256(f"hivecast-item:{seed}:{item}".encode()).digest()
    return tuple(int.from_bytes(digest[4 * i:4 * i + 4], "big") / 2**32 for i in range(d))


def lorenz(values: list[int]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    total = sum(ordered) or 1
    xs = [0.0]
    ys = [0.0]
    running = 0
    for i, v in enumerate(ordered, 1):
        running += v
        xs.append(i / len(ordered))
        ys.append(running / total)
    return xs, ys


def load_values(load: Counter[int], live: list[int]) -> list[int]:
    return [load.get(n, 0) for n in live]


def pick(rng: random.Random, seq: list[int]) -> int:
    return seq[rng.randrange(len(seq))]
