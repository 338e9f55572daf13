"""Trace-driven simulation of the eviction policies (unit-size objects): the Zipf benchmark."""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

from hivecast.cdn.policies import make_policy


def zipf_trace(*, catalog: int, requests: int, alpha: float, rng: random.Random) -> list[int]:
    """Object ids drawn with P(rank k) proportional to 1/k^alpha, ranks shuffled over ids."""
    weights = [1.0 / (k ** alpha) for k in range(1, catalog + 1)]
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    ids = list(range(catalog))
    rng.shuffle(ids)
    return [ids[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(requests)]


def hit_ratio(policy_name: str, trace: Sequence[int], capacity: int, *, size: int = 1) -> float:
    """Share of requests served from a cache of `capacity` objects run with the named policy."""
    policy = make_policy(policy_name, capacity * size)
    present: set[int] = set()
    hits = 0
    for t, obj in enumerate(trace):
        key = str(obj)
        if obj in present:
            hits += 1
            policy.hit(key)
            continue
        while len(present) >= capacity:
            victim = policy.victim()
            if victim is None:
                break
            present.discard(int(victim))
        policy.insert(key, size, expires=float(t + (obj % 97) * 10))
        present.add(obj)
    return hits / len(trace) if trace else 0.0
