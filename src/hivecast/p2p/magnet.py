"""Magnet links (BEP 9): `xt=urn:btih:` (hex or base32), `dn`, `tr`, `ws`, `x.pe`; v2 `urn:btmh:` is kept."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from hivecast.p2p.errors import MagnetError

MAX_MAGNET_LENGTH = 16 * 1024


@dataclass(frozen=True, slots=True)
class Magnet:
    info_hash: bytes
    display_name: str | None = None
    trackers: tuple[str, ...] = ()
    web_seeds: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()
    info_hash_v2: bytes | None = None

    def __str__(self) -> str:
        parts = [f"xt=urn:btih:{self.info_hash.hex()}"]
        if self.info_hash_v2 is not None:
            parts.append(f"xt=urn:btmh:1220{self.info_hash_v2.hex()}")
        if self.display_name:
            parts.append(f"dn={quote(self.display_name, safe='')}")
        parts += [f"tr={quote(t, safe='')}" for t in self.trackers]
        parts += [f"ws={quote(w, safe='')}" for w in self.web_seeds]
        parts += [f"x.pe={host}:{port}" for host, port in self.peers]
        return "magnet:?" + "&".join(parts)


def _parse_peer(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MagnetError(f"x.pe {value!r} is not host:port")
    return host, int(port)


def parse_magnet(uri: str) -> Magnet:
    if len(uri) > MAX_MAGNET_LENGTH:
        raise MagnetError("magnet link too long")
    parts = urlsplit(uri)
    if parts.scheme != "magnet":
        raise MagnetError("not a magnet: link")
    info_hash: bytes | None = None
    v2: bytes | None = None
    name: str | None = None
    trackers: list[str] = []
    seeds: list[str] = []
    peers: list[tuple[str, int]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "xt" or (key.startswith("xt.") and key[3:].isdigit()):
            low = value.lower()
            if low.startswith("urn:btih:"):
                digest = value[9:]
                try:
                    if len(digest) == 40:
                        info_hash = bytes.fromhex(digest)
                    elif len(digest) == 32:
                        info_hash = base64.b32decode(digest.upper())
                    else:
                        raise MagnetError("btih must be 40 hex or 32 base32 characters")
                except (ValueError, binascii.Error):
                    raise MagnetError("btih is not valid hex or base32") from None
            elif low.startswith("urn:btmh:1220") and len(value) == 13 + 64:
                try:
                    v2 = bytes.fromhex(value[13:])
                except ValueError:
                    raise MagnetError("btmh is not valid hex") from None
        elif key == "dn":
            name = value
        elif key == "tr" or key.startswith("tr."):
            trackers.append(value)
        elif key == "ws":
            seeds.append(value)
        elif key == "x.pe":
            peers.append(_parse_peer(value))
    if info_hash is None:
        if v2 is None:
            raise MagnetError("magnet link has no urn:btih info-hash")
        # A v2-only link: the v1 swarm is addressed by the truncated v2 hash (BEP 52).
        info_hash = v2[:20]
    return Magnet(info_hash, name, tuple(trackers), tuple(seeds), tuple(peers), v2)


def make_magnet(
    info_hash: bytes, *, name: str | None = None, trackers: tuple[str, ...] | list[str] = (),
    web_seeds: tuple[str, ...] | list[str] = (), info_hash_v2: bytes | None = None,
) -> str:
    return str(Magnet(info_hash, name, tuple(trackers), tuple(web_seeds), (), info_hash_v2))


__all__ = ["Magnet", "MagnetError", "make_magnet", "parse_magnet"]
