"""One record per simulated lookup, CSV output and summary figures shared by every overlay."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(slots=True)
class LookupRecord:
    design: str
    index: int
    nodes: int
    churn: float
    source: str
    key: str
    success: bool
    hops: int
    messages: int
    latency: float


def write_csv(records: Iterable[LookupRecord], path: Path) -> None:
    names = [f.name for f in fields(LookupRecord)]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        # Field by field rather than dataclasses.asdict (which deep-copies): a million rows at N = 10,000.
        writer.writerows((r.design, r.index, r.nodes, r.churn, r.source, r.key, r.success, r.hops, r.messages,
                          f"{r.latency:.6f}") for r in records)


def summarize(records: list[LookupRecord]) -> dict[str, float]:
    if not records:
        return {"lookups": 0}
    ok = [r for r in records if r.success]
    hops = [r.hops for r in ok] or [0]
    n = records[0].nodes
    return {
        "lookups": len(records),
        "success_rate": len(ok) / len(records),
        "mean_hops": statistics.fmean(hops),
        "median_hops": statistics.median(hops),
        "max_hops": max(hops),
        "mean_messages": statistics.fmean(r.messages for r in records),
        "mean_latency": statistics.fmean(r.latency for r in ok) if ok else 0.0,
        "log2_n": math.log2(n) if n > 0 else 0.0,
    }


def gini(values: list[int]) -> float:
    """Inequality of load (0: every node handles the same number of messages)."""
    if not values or sum(values) == 0:
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    cumulative = sum((i + 1) * v for i, v in enumerate(ordered))
    return (2 * cumulative) / (n * sum(ordered)) - (n + 1) / n
