"""Per-edge counters: hits, misses, stale serves, coalesced waits, bytes, hit ratio, origin offload."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class EdgeStats:
    requests: int = 0
    hits: int = 0
    misses: int = 0
    stale: int = 0
    revalidated: int = 0
    coalesced: int = 0
    passed: int = 0
    errors: int = 0
    uncacheable: int = 0
    bytes_served: int = 0
    bytes_from_origin: int = 0
    origin_requests: int = 0
    prefetches: int = 0
    purged: int = 0

    @property
    def hit_ratio(self) -> float:
        cached = self.hits + self.stale + self.revalidated
        total = cached + self.misses + self.coalesced + self.uncacheable
        return cached / total if total else 0.0

    @property
    def offload(self) -> float:
        """Share of served bytes that did not come from the origin."""
        if not self.bytes_served:
            return 0.0
        return max(0.0, 1.0 - self.bytes_from_origin / self.bytes_served)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["hit_ratio"] = round(self.hit_ratio, 4)
        out["offload"] = round(self.offload, 4)
        return out


class StatsCollector:
    """A prometheus_client collector reading EdgeStats at scrape time."""

    def __init__(self, stats: EdgeStats, store_sizes: Any) -> None:
        self.stats = stats
        self.store_sizes = store_sizes

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        results = CounterMetricFamily("hivecast_cdn_responses", "Edge responses by cache result", labels=["result"])
        for label, value in (("hit", s.hits), ("miss", s.misses), ("stale", s.stale),
                             ("revalidated", s.revalidated), ("coalesced", s.coalesced), ("pass", s.passed),
                             ("uncacheable", s.uncacheable), ("error", s.errors)):
            results.add_metric([label], value)
        yield results
        yield CounterMetricFamily("hivecast_cdn_bytes_served", "Body bytes sent to clients", value=s.bytes_served)
        yield CounterMetricFamily("hivecast_cdn_origin_bytes", "Body bytes fetched upstream", value=s.bytes_from_origin)
        yield CounterMetricFamily("hivecast_cdn_origin_requests", "Requests sent upstream", value=s.origin_requests)
        yield GaugeMetricFamily("hivecast_cdn_hit_ratio", "Share of cacheable requests served from cache",
                                value=s.hit_ratio)
        yield GaugeMetricFamily("hivecast_cdn_origin_offload", "Share of served bytes not fetched upstream",
                                value=s.offload)
        sizes = GaugeMetricFamily("hivecast_cdn_store_bytes", "Bytes held per cache tier", labels=["tier"])
        for tier, used in self.store_sizes().items():
            sizes.add_metric([tier], used)
        yield sizes
