"""Rendition choice: BOLA (Spiteri et al., "BOLA: Near-Optimal Bitrate Adaptation for Online Videos")
with a throughput rule while the buffer is short, as dash.js's DYNAMIC strategy does. Pure functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BolaParams:
    segment: float  # seconds per segment
    buffer_target: float  # seconds of buffer BOLA aims to keep
    min_buffer: float = 10.0  # below this (or the target), the throughput rule decides
    safety: float = 0.9  # fraction of the estimate the throughput rule may spend


def utilities(bitrates: list[int]) -> list[float]:
    low = bitrates[0]
    return [math.log(b / low) + 1 for b in bitrates]  # the lowest has utility 1


def bola_choice(bitrates: list[int], buffer_level: float, p: BolaParams) -> int:
    """Index maximising (V*u_m + V*gp - Q) / S_m, with V and gp set so the lowest is chosen at the
    minimum buffer and the highest at the buffer target (BOLA-BASIC)."""
    if len(bitrates) == 1:
        return 0
    u = utilities(bitrates)
    buffer_min = min(p.min_buffer, p.buffer_target / 2)
    buffer_max = max(p.buffer_target, buffer_min + p.segment)
    gp = (u[-1] - 1) / (buffer_max / buffer_min - 1)
    vp = buffer_min / gp
    q = buffer_level / p.segment * p.segment  # buffer in seconds, segments sized `segment`
    best, best_score = 0, -math.inf
    for i, (b, ui) in enumerate(zip(bitrates, u, strict=True)):
        score = (vp * (ui + gp) - q) / b
        if score > best_score:
            best, best_score = i, score
    return best


def throughput_choice(bitrates: list[int], throughput: float, safety: float) -> int:
    best = 0
    for i, b in enumerate(bitrates):
        if b <= throughput * safety:
            best = i
    return best


def choose(bitrates: list[int], buffer_level: float, throughput: float, p: BolaParams, *, current: int | None) -> int:
    """The dynamic rule: throughput while the buffer is short; BOLA once it is long, kept within one
    step above what the throughput sustains (so a full buffer is spent slowly, never all at once)."""
    by_throughput = throughput_choice(bitrates, throughput, p.safety)
    if buffer_level < min(p.min_buffer, p.buffer_target / 2) or current is None:
        return by_throughput
    by_buffer = bola_choice(bitrates, buffer_level, p)
    if buffer_level < p.buffer_target:
        return min(by_buffer, by_throughput) if by_buffer < current else min(max(by_buffer, current), by_throughput)
    return min(by_buffer, by_throughput + 1)
