"""Bitrate ladder rungs: "720p" names a height; width follows the source's aspect ratio."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Video bitrates (bits/s) for H.264 at about 30 fps; rungs between rows use the next row up.
DEFAULT_BITRATES = {
    2160: 14_000_000, 1440: 9_000_000, 1080: 5_000_000, 720: 2_800_000, 540: 1_600_000,
    480: 1_100_000, 360: 700_000, 270: 450_000, 240: 400_000, 180: 250_000, 144: 160_000,
}
MAX_RUNGS = 8


class LadderError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Rung:
    height: int
    bitrate: int

    @property
    def name(self) -> str:
        return f"{self.height}p"

    def size_for(self, src_width: int, src_height: int) -> tuple[int, int]:
        """Even width and height at this rung's height, keeping the source's aspect ratio."""
        width = round(src_width * self.height / src_height / 2) * 2 if src_height else self.height * 16 // 9
        return max(2, width), self.height - self.height % 2


def default_bitrate(height: int) -> int:
    for h in sorted(DEFAULT_BITRATES):
        if height <= h:
            return DEFAULT_BITRATES[h]
    return DEFAULT_BITRATES[2160]


def parse_ladder(spec: str | list[str] | None) -> list[Rung]:
    """Parse "720p,480p@900k,240p" (optional @bitrate with k or M) into rungs, highest first."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [x for s in spec for x in s.split(",")]
    rungs: list[Rung] = []
    for raw in items:
        item = raw.strip().lower()
        if not item:
            continue
        m = re.fullmatch(r"(\d{2,4})p(?:@(\d+(?:\.\d+)?)([km]?))?", item)
        if m is None:
            raise LadderError(f"bad ladder rung {raw!r}: expected e.g. 720p or 480p@900k")
        height = int(m.group(1))
        if not 72 <= height <= 4320:
            raise LadderError(f"ladder rung {raw!r}: height must be 72..4320")
        if m.group(2):
            scale = {"": 1, "k": 1000, "m": 1_000_000}[m.group(3)]
            bitrate = int(float(m.group(2)) * scale)
        else:
            bitrate = default_bitrate(height)
        if not 32_000 <= bitrate <= 100_000_000:
            raise LadderError(f"ladder rung {raw!r}: bitrate out of range")
        rungs.append(Rung(height, bitrate))
    if len(rungs) > MAX_RUNGS:
        raise LadderError(f"at most {MAX_RUNGS} ladder rungs")
    unique = {r.height: r for r in rungs}
    return sorted(unique.values(), key=lambda r: r.height, reverse=True)
