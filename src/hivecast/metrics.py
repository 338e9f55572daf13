"""Prometheus metrics. Each node owns a registry, so several nodes can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "NodeMetrics"]


class NodeMetrics:
    def __init__(self, role: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge("hivecast_node_info", "Node role and version", ["role", "version"], registry=self.registry)
        from hivecast import __version__

        self.info.labels(role=role, version=__version__).set(1)
        self.http_requests = Counter(
            "hivecast_http_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.http_seconds = Histogram(
            "hivecast_http_request_seconds", "Time to produce an HTTP response (head and body)", ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.http_connections = Gauge(
            "hivecast_http_connections", "Open HTTP connections", registry=self.registry
        )
        self.http_rejected = Counter(
            "hivecast_http_rejected_connections", "Connections refused at the connection limit",
            registry=self.registry,
        )
        self.limit = Gauge("hivecast_limit", "Configured limits", ["name"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
