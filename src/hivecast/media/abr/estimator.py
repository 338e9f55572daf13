"""Throughput estimate: two exponentially weighted averages over download samples, the lower wins.

Samples are weighted by their download time, so a long download counts more than a tiny one (as in
Shaka Player's and dash.js's estimators); the fast average reacts to a drop within a segment or two,
the slow one keeps a short burst from raising the estimate too soon.
"""

from __future__ import annotations

import math


class Ewma:
    def __init__(self, half_life: float) -> None:
        self.alpha = math.exp(math.log(0.5) / half_life)
        self.estimate = 0.0
        self.total_weight = 0.0

    def sample(self, weight: float, value: float) -> None:
        adj = self.alpha ** weight
        self.estimate = value * (1 - adj) + adj * self.estimate
        self.total_weight += weight

    def value(self) -> float:
        zero_factor = 1 - self.alpha ** self.total_weight
        return self.estimate / zero_factor if zero_factor > 0 else 0.0


class ThroughputEstimator:
    MIN_BYTES = 16_000  # smaller downloads are latency, not bandwidth

    def __init__(self, fast_half_life: float = 2.0, slow_half_life: float = 6.0, default_bps: float = 1_000_000) -> None:
        self.fast = Ewma(fast_half_life)
        self.slow = Ewma(slow_half_life)
        self.default = default_bps
        self.samples = 0

    def sample(self, nbytes: int, seconds: float) -> None:
        if nbytes < self.MIN_BYTES or seconds <= 0:
            return
        bps = nbytes * 8 / seconds
        self.fast.sample(seconds, bps)
        self.slow.sample(seconds, bps)
        self.samples += 1

    def estimate(self) -> float:
        if self.samples == 0:
            return self.default
        return min(self.fast.value(), self.slow.value())
