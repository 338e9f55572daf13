"""UDP tracker protocol (BEP 15), sans I/O: one datagram in, at most one datagram out.

Connection ids are not stored: each is an HMAC of the client's address and the current minute,
so a spoofed source address cannot obtain one, and ids stay valid for about two minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from hivecast.p2p.errors import TrackerError
from hivecast.p2p.tracker.core import EVENTS, AnnounceRequest, TrackerCore
from hivecast.p2p.wire.messages import compact_peers

PROTOCOL_ID = 0x41727101980
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3
CONNECTION_ID_SECONDS = 60.0

_HEAD = struct.Struct(">QII")
_ANNOUNCE = struct.Struct(">QII20s20sQQQIIIiH")  # 98 bytes
_UDP_EVENTS = {0: "", 1: "completed", 2: "started", 3: "stopped"}


class UdpTrackerProtocol:
    def __init__(self, core: TrackerCore, *, secret: bytes | None = None) -> None:
        self.core = core
        self.secret = secret or os.urandom(32)
        self.rejected = 0

    def connection_id(self, addr: tuple[str, int], now: float, *, age: int = 0) -> int:
        bucket = int(now // CONNECTION_ID_SECONDS) - age
        mac = hmac.new(self.secret, f"{addr[0]}|{addr[1]}|{bucket}".encode(), hashlib.sha256).digest()
        return int.from_bytes(mac[:8], "big")

    def _valid(self, cid: int, addr: tuple[str, int], now: float) -> bool:
        return cid in (self.connection_id(addr, now), self.connection_id(addr, now, age=1))

    def handle(self, data: bytes, addr: tuple[str, int], now: float) -> bytes | None:
        """The reply to one datagram, or None to stay silent (garbage, or a bad connection id)."""
        if len(data) < 16:
            self.rejected += 1
            return None
        cid, action, txid = _HEAD.unpack_from(data, 0)
        if action == CONNECT:
            if cid != PROTOCOL_ID:
                self.rejected += 1
                return None
            return struct.pack(">IIQ", CONNECT, txid, self.connection_id(addr, now))
        if not self._valid(cid, addr, now):
            # An unknown connection id gets no reply: answering would make us a reflector.
            self.rejected += 1
            return None
        try:
            if action == ANNOUNCE:
                return self._announce(data, addr, txid, now)
            if action == SCRAPE:
                return self._scrape(data, txid, now)
            raise TrackerError("unknown action")
        except TrackerError as exc:
            return struct.pack(">II", ERROR, txid) + str(exc).encode()[:200]

    def _announce(self, data: bytes, addr: tuple[str, int], txid: int, now: float) -> bytes:
        if len(data) < _ANNOUNCE.size:
            raise TrackerError("announce too short")
        (_, _, _, info_hash, peer_id, downloaded, left, uploaded, event, _ip, key, numwant,
         port) = _ANNOUNCE.unpack_from(data, 0)
        if event not in _UDP_EVENTS:
            raise TrackerError("invalid event")
        ev = _UDP_EVENTS[event]
        assert ev in EVENTS
        req = AnnounceRequest(
            info_hash=info_hash, peer_id=peer_id, ip=addr[0], port=port, uploaded=uploaded,
            downloaded=downloaded, left=left, event=ev, numwant=None if numwant < 0 else numwant, key=key,
        )
        result = self.core.announce(req, now)
        v6 = ":" in addr[0]
        # BEP 15 over IPv6 returns 18-byte peers; each family only gets peers it can reach.
        peers = [(ip, p) for ip, p, _ in result.peers if (":" in ip) == v6]
        return struct.pack(">IIIII", ANNOUNCE, txid, result.interval, result.incomplete, result.complete) + \
            compact_peers(peers, v6=v6)

    def _scrape(self, data: bytes, txid: int, now: float) -> bytes:
        body = data[16:]
        if not body or len(body) % 20 or len(body) > 74 * 20:
            raise TrackerError("scrape needs 1 to 74 info-hashes")
        hashes = [body[i : i + 20] for i in range(0, len(body), 20)]
        stats = self.core.scrape(hashes, now)
        out = bytearray(struct.pack(">II", SCRAPE, txid))
        for h in hashes:
            c, d, i = stats.get(h, (0, 0, 0))
            out += struct.pack(">III", c, d, i)
        return bytes(out)


# -- client side (used by tests and the benchmark) --

def connect_request(txid: int) -> bytes:
    return _HEAD.pack(PROTOCOL_ID, CONNECT, txid)


def announce_request(
    cid: int, txid: int, *, info_hash: bytes, peer_id: bytes, port: int, left: int = 0, downloaded: int = 0,
    uploaded: int = 0, event: int = 0, numwant: int = -1, key: int = 0,
) -> bytes:
    return _ANNOUNCE.pack(cid, ANNOUNCE, txid, info_hash, peer_id, downloaded, left, uploaded, event, 0, key,
                          numwant, port)
