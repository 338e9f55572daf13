"""Choosing an edge for a client: region by network, health, drain state, load, latency, and
rendezvous (highest-random-weight) hashing so one object or one network sticks to few edges.

Pure functions over edge records; the DNS and HTTP routers call them with what they know.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RegionMap:
    """Client networks to regions; the most specific network wins."""

    networks: tuple[tuple[IPNetwork, str], ...] = ()

    @classmethod
    def from_config(cls, mapping: Mapping[str, str]) -> RegionMap:
        nets = [(ipaddress.ip_network(cidr, strict=False), region) for cidr, region in mapping.items()]
        nets.sort(key=lambda item: item[0].prefixlen, reverse=True)
        return cls(tuple(nets))

    def region_of(self, address: str | None) -> str | None:
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for net, region in self.networks:
            if ip.version == net.version and ip in net:
                return region
        return None


def load_score(edge: Mapping[str, Any]) -> float:
    """Lower is better: CPU share, connections and bandwidth folded together, plus latency."""
    load = edge.get("load") or {}
    cpu = float(load.get("cpu", 0.0) or 0.0)
    conns = float(load.get("connections", 0) or 0)
    bw = float(load.get("bandwidth_bps", 0) or 0)
    latency = float(edge.get("latency_ms", 0.0) or 0.0)
    return cpu + conns / 1000.0 + bw / 1e9 + latency / 100.0


def _weight(edge_id: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{edge_id}|{key}".encode(), digest_size=8).digest(), "big")


def eligible(edges: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in edges if e.get("healthy") and not e.get("draining")]


def choose(edges: Sequence[Mapping[str, Any]], *, region: str | None, key: str, count: int = 1,
           overload: float = 0.9) -> list[Mapping[str, Any]]:
    """Healthy, non-draining edges for a client in `region` (all regions if none there).

    Within the region, rendezvous hashing on `key` orders edges, so each key maps to the same
    edge while it stays up; an edge whose load score is over `overload` times the region's
    least loaded one plus one is skipped while a lighter one exists."""
    pool = eligible(edges)
    if not pool:
        return []
    local = [e for e in pool if region is not None and e.get("region") == region]
    candidates = local or pool
    lightest = min(load_score(e) for e in candidates)
    light = [e for e in candidates if load_score(e) <= lightest + 1.0 + overload] or candidates
    light.sort(key=lambda e: _weight(str(e.get("id")), key), reverse=True)
    return light[:count]
