"""Swarm bookkeeping shared by the HTTP and UDP trackers, sans I/O (`now` is passed in).

Peers expire when they have not announced for `peer_ttl`; the number of torrents and of peers
per torrent is capped, and `numwant` is clamped, so announces cannot grow memory without bound.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

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


class _Swarm:
    """Peers of one torrent, with O(1) announce, expiry and random sampling.

    `peers` is kept in last-seen order (re-inserted on every announce), so expiry pops from the
    front; `ids`/`pos` give random access for sampling without copying the swarm per announce.
    """

    __slots__ = ("downloaded", "ids", "peers", "pos", "seeds")

    def __init__(self) -> None:
        self.peers: dict[bytes, _Peer] = {}
        self.ids: list[bytes] = []
        self.pos: dict[bytes, int] = {}
        self.seeds = 0
        self.downloaded = 0

    def upsert(self, pid: bytes, peer: _Peer) -> None:
        old = self.peers.pop(pid, None)
        if old is None:
            self.pos[pid] = len(self.ids)
            self.ids.append(pid)
        elif old.seed:
            self.seeds -= 1
        self.peers[pid] = peer
        if peer.seed:
            self.seeds += 1

    def remove(self, pid: bytes) -> None:
        peer = self.peers.pop(pid, None)
        if peer is None:
            return
        if peer.seed:
            self.seeds -= 1
        i = self.pos.pop(pid)
        last = self.ids.pop()
        if last != pid:
            self.ids[i] = last
            self.pos[last] = i

    def expire(self, now: float, ttl: float) -> None:
        while self.peers:
            pid, peer = next(iter(self.peers.items()))
            if now - peer.last_seen <= ttl:
                return
            self.remove(pid)

    def sample(self, k: int, exclude: bytes, leechers_only: bool, rng: random.Random) -> list[tuple[bytes, _Peer]]:
        n = len(self.ids)
        if n <= 2 * k + 1:
            picks = list(self.ids)
            rng.shuffle(picks)
        else:
            picks = [self.ids[i] for i in rng.sample(range(n), 2 * k + 1)]
        out: list[tuple[bytes, _Peer]] = []
        for pid in picks:
            if len(out) >= k:
                break
            peer = self.peers[pid]
            if pid != exclude and not (leechers_only and peer.seed):
                out.append((pid, peer))
        return out


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
        swarm.expire(now, self.limits.peer_ttl)
        if req.event == "stopped":
            swarm.remove(req.peer_id)
        else:
            peer = swarm.peers.get(req.peer_id)
            if peer is None and len(swarm.peers) >= self.limits.max_peers_per_torrent:
                raise TrackerError("swarm is full")
            if req.event == "completed" and (peer is None or not peer.seed):
                swarm.downloaded += 1
            swarm.upsert(req.peer_id, _Peer(req.ip, req.port, req.left == 0, now))
        numwant = self.limits.default_numwant if req.numwant is None or req.numwant < 0 else req.numwant
        numwant = min(numwant, self.limits.max_numwant)
        # A seed gains nothing from other seeds.
        others = swarm.sample(numwant, req.peer_id, req.left == 0, self.rng)
        return AnnounceResult(
            self.limits.interval, self.limits.min_interval, swarm.seeds, len(swarm.peers) - swarm.seeds,
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
            swarm.expire(now, self.limits.peer_ttl)
            out[h] = (swarm.seeds, swarm.downloaded, len(swarm.peers) - swarm.seeds)
        return out

    def expire(self, now: float) -> None:
        for h in list(self.swarms):
            swarm = self.swarms[h]
            swarm.expire(now, self.limits.peer_ttl)
            if not swarm.peers:
                del self.swarms[h]
