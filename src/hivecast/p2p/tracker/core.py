"""Swarm bookkeeping shared by the HTTP and UDP trackers, sans I/O (`now` is passed in).

Peers expire when they have not announced for `peer_ttl`; the number of torrents and of peers
per torrent is capped, and `numwant` is clamped, so announces cannot grow memory without bound.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hivecast.p2p.errors import TrackerError

EVENTS = ("", "started", "completed", "stopped", "paused")


@dataclass(frozen=True, slots=True)
class TrackerLimits:
    interval: int = 1800
    min_interval: int = 60
    peer_ttl: float = 3600.0
    default_numwant: int = 50
    max_numwant: int = 200
    max_torrents: int = 100_000
    max_peers_per_torrent: int = 10_000


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    info_hash: bytes
    peer_id: bytes
    ip: str
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0
    event: str = ""
    numwant: int | None = None
    key: int | None = None


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    interval: int
    min_interval: int
    complete: int
    incomplete: int
    peers: list[tuple[str, int, bytes]]


@dataclass(slots=True)
class _Peer:
    ip: str
    port: int
    seed: bool
    last_seen: float


@dataclass(slots=True)
class _Swarm:
    peers: dict[bytes, _Peer] = field(default_factory=dict)
    downloaded: int = 0


class TrackerCore:
    def __init__(
        self, limits: TrackerLimits | None = None, *, allowed: Callable[[bytes], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.limits = limits or TrackerLimits()
        # When set, only these info-hashes are tracked (a node serving only its own torrents).
        self.allowed = allowed
        self.rng = rng or random.Random()
        self.swarms: dict[bytes, _Swarm] = {}
        self.announces = 0

    def _check(self, info_hash: bytes) -> None:
        if len(info_hash) != 20:
            raise TrackerError("info_hash must be 20 bytes")
        if self.allowed is not None and not self.allowed(info_hash):
            raise TrackerError("unregistered torrent")

    def announce(self, req: AnnounceRequest, now: float) -> AnnounceResult:
        self._check(req.info_hash)
        if len(req.peer_id) != 20:
            raise TrackerError("peer_id must be 20 bytes")
        if not 0 < req.port < 65536:
            raise TrackerError("invalid port")
        if req.event not in EVENTS:
            raise TrackerError("invalid event")
        if min(req.uploaded, req.downloaded, req.left) < 0:
            raise TrackerError("negative byte counts")
        self.announces += 1
        swarm = self.swarms.get(req.info_hash)
        if swarm is None:
            if req.event == "stopped":
                return AnnounceResult(self.limits.interval, self.limits.min_interval, 0, 0, [])
            self.expire(now)
            if len(self.swarms) >= self.limits.max_torrents:
                raise TrackerError("tracker is full")
            swarm = self.swarms[req.info_hash] = _Swarm()
        self._expire_swarm(swarm, now)
        if req.event == "stopped":
            swarm.peers.pop(req.peer_id, None)
        else:
            peer = swarm.peers.get(req.peer_id)
            if peer is None and len(swarm.peers) >= self.limits.max_peers_per_torrent:
                raise TrackerError("swarm is full")
            if req.event == "completed" and (peer is None or not peer.seed):
                swarm.downloaded += 1
            swarm.peers[req.peer_id] = _Peer(req.ip, req.port, req.left == 0, now)
        numwant = self.limits.default_numwant if req.numwant is None or req.numwant < 0 else req.numwant
        numwant = min(numwant, self.limits.max_numwant)
        others = [(pid, p) for pid, p in swarm.peers.items() if pid != req.peer_id]
        # A seed gains nothing from other seeds.
        if req.left == 0:
            others = [(pid, p) for pid, p in others if not p.seed]
        if len(others) > numwant:
            others = self.rng.sample(others, numwant)
        complete = sum(1 for p in swarm.peers.values() if p.seed)
        return AnnounceResult(
            self.limits.interval, self.limits.min_interval, complete, len(swarm.peers) - complete,
            [(p.ip, p.port, pid) for pid, p in others],
        )

    def scrape(self, info_hashes: list[bytes], now: float) -> dict[bytes, tuple[int, int, int]]:
        """info_hash -> (complete, downloaded, incomplete); unknown hashes are left out."""
        out: dict[bytes, tuple[int, int, int]] = {}
        for h in info_hashes[:100]:
            if len(h) != 20:
                raise TrackerError("info_hash must be 20 bytes")
            swarm = self.swarms.get(h)
            if swarm is None:
                if self.allowed is not None and self.allowed(h):
                    out[h] = (0, 0, 0)
                continue
            self._expire_swarm(swarm, now)
            complete = sum(1 for p in swarm.peers.values() if p.seed)
            out[h] = (complete, swarm.downloaded, len(swarm.peers) - complete)
        return out

    def _expire_swarm(self, swarm: _Swarm, now: float) -> None:
        ttl = self.limits.peer_ttl
        stale = [pid for pid, p in swarm.peers.items() if now - p.last_seen > ttl]
        for pid in stale:
            del swarm.peers[pid]

    def expire(self, now: float) -> None:
        for h in list(self.swarms):
            swarm = self.swarms[h]
            self._expire_swarm(swarm, now)
            if not swarm.peers:
                del self.swarms[h]
