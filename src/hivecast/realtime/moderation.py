"""Moderation state of one room, pure and clocked from outside: rate limits, mutes, bans."""

from __future__ import annotations

from dataclasses import dataclass, field

MODERATOR_ROLES = frozenset({"admin", "streamer"})


@dataclass(slots=True)
class TokenBucket:
    """`count` messages per `window` seconds, refilled continuously."""

    count: int
    window: float
    tokens: float = -1.0
    updated: float = 0.0

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = float(self.count), now
        rate = self.count / self.window
        self.tokens = min(float(self.count), self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class RoomModeration:
    rate_count: int
    rate_window: float
    muted_until: dict[str, float] = field(default_factory=dict)  # user id -> until (inf: until unmuted)
    banned: set[str] = field(default_factory=set)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def is_muted(self, user: str, now: float) -> bool:
        until = self.muted_until.get(user)
        if until is None:
            return False
        if now >= until:
            del self.muted_until[user]
            return False
        return True

    def allow_message(self, user: str, now: float) -> bool:
        bucket = self.buckets.get(user)
        if bucket is None:
            if len(self.buckets) > 100_000:  # bound the table: forget everyone's (full) buckets
                self.buckets.clear()
            bucket = self.buckets[user] = TokenBucket(self.rate_count, self.rate_window)
        return bucket.allow(now)

    def apply(self, action: str, user: str, until: float | None) -> None:
        if action == "mute":
            self.muted_until[user] = until if until is not None else float("inf")
        elif action == "unmute":
            self.muted_until.pop(user, None)
        elif action == "ban":
            self.banned.add(user)
        elif action == "unban":
            self.banned.discard(user)
