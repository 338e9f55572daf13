"""Token buckets (sans-I/O: `now` is passed in) and the header values of
draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "name";q=LIMIT;w=WINDOW` and
`RateLimit: "name";r=REMAINING;t=SECONDS_UNTIL_FULL`."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Decision:
    allowed: bool
    policy: str
    limit: int
    window: float
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one request is allowed (0 when allowed)

    def headers(self) -> list[tuple[str, str]]:
        out = [("ratelimit-policy", f'"{self.policy}";q={self.limit};w={math.ceil(self.window)}'),
               ("ratelimit", f'"{self.policy}";r={self.remaining};t={self.reset}')]
        if not self.allowed:
            out.append(("retry-after", str(self.retry_after)))
        return out


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """`limit` requests per `window` seconds per key, refilled continuously; bursts up to `limit`.
    Keys are kept in LRU order and capped so a flood of distinct clients cannot grow memory."""

    def __init__(self, policy: str, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.policy = policy
        self.limit = limit
        self.window = window
        self.rate = limit / window
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float, cost: float = 1.0) -> Decision:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.limit), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(float(self.limit), bucket.tokens + elapsed * self.rate)
            bucket.stamp = now
        allowed = bucket.tokens >= cost
        if allowed:
            bucket.tokens -= cost
        missing = self.limit - bucket.tokens
        reset = math.ceil(missing / self.rate) if missing > 0 else 0
        retry = 0 if allowed else max(1, math.ceil((cost - bucket.tokens) / self.rate))
        return Decision(allowed, self.policy, self.limit, self.window, int(bucket.tokens), reset, retry)

    def __len__(self) -> int:
        return len(self._buckets)
