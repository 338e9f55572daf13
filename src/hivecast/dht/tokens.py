"""Write tokens for announce_peer (BEP 5): a hash of the querier's IP and a secret that rotates every
five minutes; a token is accepted while it matches the current or the previous secret (up to ten
minutes old), and only from the IP it was issued to."""

from __future__ import annotations

import hashlib
import random

TOKEN_BYTES = 8
ROTATE_EVERY = 300.0


class TokenManager:
    def __init__(self, rng: random.Random, now: float, *, rotate_every: float = ROTATE_EVERY) -> None:
        self._rng = rng
        self._rotate_every = rotate_every
        self._current = rng.randbytes(16)
        self._previous = rng.randbytes(16)
        self._rotated_at = now

    def _maybe_rotate(self, now: float) -> None:
        if now - self._rotated_at >= self._rotate_every:
            # After a long gap both secrets are stale: rotate twice so old tokens die.
            twice = now - self._rotated_at >= 2 * self._rotate_every
            self._previous = self._rng.randbytes(16) if twice else self._current
            self._current = self._rng.randbytes(16)
            self._rotated_at = now

    @staticmethod
    def _make(secret: bytes, ip: str) -> bytes:
        return hashlib.sha1(secret + ip.encode()).digest()[:TOKEN_BYTES]

    def issue(self, ip: str, now: float) -> bytes:
        self._maybe_rotate(now)
        return self._make(self._current, ip)

    def valid(self, token: bytes, ip: str, now: float) -> bool:
        self._maybe_rotate(now)
        if len(token) != TOKEN_BYTES:
            return False
        return token in (self._make(self._current, ip), self._make(self._previous, ip))
