"""Where segments start: on keyframes, once the target duration has passed. Pure."""

from __future__ import annotations

MIN_TARGET = 1.0
MAX_TARGET = 10.0


def plan_cuts(keyframes: list[float], target: float, *, tolerance: float = 0.02) -> list[float]:
    """Segment start times (seconds) chosen among keyframe times (sorted), at least `target` apart.

    `tolerance` absorbs timestamp rounding so a GOP of exactly the target length cuts every GOP.
    """
    if target <= 0:
        raise ValueError("target must be positive")
    cuts: list[float] = []
    for t in sorted(keyframes):
        if not cuts or t - cuts[-1] >= target - tolerance:
            cuts.append(t)
    return cuts


class CutCursor:
    """Walks a cut plan as packets arrive: `is_cut(t)` is true once per planned cut that `t` reaches."""

    def __init__(self, cuts: list[float]) -> None:
        self.cuts = cuts
        self.index = 0  # the next cut not yet taken

    def is_cut(self, t: float, *, tolerance: float = 0.001) -> bool:
        taken = False
        while self.index < len(self.cuts) and t >= self.cuts[self.index] - tolerance:
            self.index += 1
            taken = True
        return taken


class LiveCutter:
    """Live cutting without a plan: cut at a keyframe once `target` seconds have passed."""

    def __init__(self, target: float, *, tolerance: float = 0.02) -> None:
        self.target = target
        self.tolerance = tolerance
        self.start: float | None = None

    def is_cut(self, t: float, keyframe: bool) -> bool:
        if not keyframe:
            return False
        if self.start is None or t - self.start >= self.target - self.tolerance:
            self.start = t
            return True
        return False
