"""Announced peers per info-hash, each with an expiry; bounded in torrents and peers per torrent."""

from __future__ import annotations

import random
from collections import OrderedDict

from hivecast.dht.ids import Address

PEER_TTL = 30 * 60.0


class PeerStore:
    def __init__(self, *, ttl: float = PEER_TTL, max_torrents: int = 2000, max_peers: int = 200) -> None:
        self.ttl = ttl
        self.max_torrents = max_torrents
        self.max_peers = max_peers
        # info_hash -> {peer address -> expiry}; the outer dict is in least-recently-announced order.
        self._torrents: OrderedDict[bytes, dict[Address, float]] = OrderedDict()

    def announce(self, info_hash: bytes, peer: Address, now: float) -> None:
        peers = self._torrents.get(info_hash)
        if peers is None:
            if len(self._torrents) >= self.max_torrents:
                self._torrents.popitem(last=False)
            peers = self._torrents[info_hash] = {}
        else:
            self._torrents.move_to_end(info_hash)
        if peer not in peers and len(peers) >= self.max_peers:
            self._expire(peers, now)
            if len(peers) >= self.max_peers:
                del peers[min(peers, key=peers.__getitem__)]  # drop the one that expires first
        peers[peer] = now + self.ttl

    @staticmethod
    def _expire(peers: dict[Address, float], now: float) -> None:
        for addr in [a for a, exp in peers.items() if exp <= now]:
            del peers[addr]

    def get(self, info_hash: bytes, now: float, *, limit: int = 50, rng: random.Random | None = None) -> list[Address]:
        peers = self._torrents.get(info_hash)
        if not peers:
            return []
        self._expire(peers, now)
        if not peers:
            del self._torrents[info_hash]
            return []
        found = list(peers)
        if len(found) > limit:
            found = (rng or random).sample(found, limit)
        return found

    def expire(self, now: float) -> None:
        for info_hash in list(self._torrents):
            peers = self._torrents[info_hash]
            self._expire(peers, now)
            if not peers:
                del self._torrents[info_hash]

    def __len__(self) -> int:
        return len(self._torrents)

    def peer_count(self) -> int:
        return sum(len(p) for p in self._torrents.values())
