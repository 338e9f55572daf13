"""The classic choker (BEP 3 / the original client) as a pure function over peer statistics.

Every 10 seconds the interested peers that give us the most (or, when we seed, take the most)
are unchoked; every third round one more choked interested peer is unchoked at random
(optimistic unchoke, which lets newcomers prove themselves). A peer that sent us nothing for a
minute while unchoking us is snubbed: it loses its regular slot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ROUND_SECONDS = 10.0
OPTIMISTIC_ROUNDS = 3  # 30 s
SNUB_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PeerStats:
    key: object
    interested: bool
    download_rate: float  # bytes/s we received from them
    upload_rate: float  # bytes/s we sent them
    last_piece_received: float | None  # when they last sent us a block (None: never)
    unchoking_us: bool
    connected_at: float


@dataclass(frozen=True, slots=True)
class ChokerState:
    round: int = 0
    optimistic: object | None = None


def is_snubbed(p: PeerStats, now: float, seeding: bool) -> bool:
    if seeding or not p.unchoking_us:
        return False
    since = p.last_piece_received if p.last_piece_received is not None else p.connected_at
    return now - since > SNUB_SECONDS


def choke_round(
    peers: list[PeerStats], state: ChokerState, *, now: float, seeding: bool, slots: int = 4,
    rng: random.Random | None = None,
) -> tuple[set[object], ChokerState]:
    """Return the peers to unchoke (everyone else is choked) and the next state."""
    rng = rng or random.Random()
    candidates = [p for p in peers if p.interested and not is_snubbed(p, now, seeding)]

    def rank(p: PeerStats) -> tuple[float, float]:
        return (p.upload_rate if seeding else p.download_rate, -p.connected_at)

    candidates.sort(key=rank, reverse=True)
    regular = max(0, slots - 1)
    unchoked = {p.key for p in candidates[:regular]}
    optimistic = state.optimistic
    keys = {p.key for p in peers if p.interested}
    if state.round % OPTIMISTIC_ROUNDS == 0 or optimistic not in keys or optimistic in unchoked:
        # Newly connected peers are three times as likely to be picked (they have most to gain).
        pool = [p for p in peers if p.interested and p.key not in unchoked]
        weights = [3.0 if now - p.connected_at < 3 * ROUND_SECONDS else 1.0 for p in pool]
        optimistic = rng.choices(pool, weights)[0].key if pool else None
    if optimistic is not None:
        unchoked.add(optimistic)
    return unchoked, ChokerState(state.round + 1, optimistic)


__all__ = ["ChokerState", "PeerStats", "choke_round", "is_snubbed"]
