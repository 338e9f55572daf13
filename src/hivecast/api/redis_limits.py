"""Token buckets shared by every node through Redis (when `redis_url` is set): one Lua script
refills and takes atomically on the server, on the server's clock, so N nodes enforce one limit.
If Redis cannot be reached the node falls back to its own in-process buckets (and logs once),
so an outage degrades limits to per-node, never blocks requests."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from hivecast.api.ratelimit import Decision, TokenBuckets

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: limit, window seconds. Returns {allowed, tokens*1000}.
_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil then
  tokens = limit
  stamp = now
else
  local elapsed = math.max(0, now - stamp)
  tokens = math.min(limit, tokens + elapsed * limit / window)
  stamp = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp))
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return {allowed, math.floor(tokens * 1000)}
"""


class RedisBuckets:
    def __init__(self, client: Any, local: TokenBuckets, prefix: str = "hivecast:rl:") -> None:
        self.client = client
        self.local = local
        self.policy = local.policy
        self.limit = local.limit
        self.window = local.window
        self.prefix = prefix
        self._script = client.register_script(_SCRIPT)
        self._down_until = 0.0

    async def take(self, key: str, now: float) -> Decision:
        if now < self._down_until:
            return self.local.take(key, now)
        try:
            allowed, milli = await self._script(keys=[f"{self.prefix}{self.policy}:{key}"],
                                                args=[self.limit, self.window])
        except Exception as exc:
            if self._down_until == 0.0:
                log.warning("rate limits fall back to this node only: redis unavailable (%s)", type(exc).__name__)
            self._down_until = now + 5.0
            return self.local.take(key, now)
        self._down_until = 0.0
        tokens = int(milli) / 1000
        rate = self.limit / self.window
        missing = self.limit - tokens
        reset = math.ceil(missing / rate) if missing > 0 else 0
        retry = 0 if allowed else max(1, math.ceil((1 - tokens) / rate))
        return Decision(bool(allowed), self.policy, self.limit, self.window, int(tokens), reset, retry)


async def take(buckets: TokenBuckets | RedisBuckets, key: str) -> Decision:
    now = time.monotonic()
    if isinstance(buckets, RedisBuckets):
        return await buckets.take(key, now)
    return buckets.take(key, now)
