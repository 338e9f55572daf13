"""Ingest: decode timestamps from presentation-ordered RTP timestamps."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from hivecast.rtsp.ingest import DtsEstimator


def run(pts: list[int], depth: int = 2) -> list[tuple[int, int]]:
    est = DtsEstimator(depth)
    return [est.push(p) for p in pts]


def test_b_frames_get_increasing_dts_below_pts() -> None:
    # Decode order of I P B B P B B (3600 ticks a frame): presentation times jump back for B-frames.
    pts = [0, 10800, 3600, 7200, 21600, 14400, 18000]
    out = run(pts)
    dts = [d for _, d in out]
    assert all(a < b for a, b in itertools.pairwise(dts))
    assert all(d <= p for p, d in out)
    assert dts[2:] == [0 + 2, 3600 + 2, 7200 + 2, 10800 + 2, 14400 + 2]


def test_without_b_frames_dts_trails_pts() -> None:
    out = run([i * 3600 for i in range(6)])
    assert [p - 2 for p, _ in out] == [i * 3600 for i in range(6)]
    assert all(d <= p for p, d in out) and [d for _, d in out][2:] == [2, 3602, 7202, 10802]


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=60))
def test_fuzz_dts_always_increasing_and_not_above_pts(pts: list[int]) -> None:
    out = run(pts)
    dts = [d for _, d in out]
    assert all(a < b for a, b in itertools.pairwise(dts))
    # Even for streams that break the reorder bound, dts passes pts only to keep growing.
    assert all(d <= p or d == prev + 1 for (p, d), prev in zip(out, [-(10**12), *dts], strict=False))
