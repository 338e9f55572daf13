"""HTTP tracker wire form (BEP 3, compact peers BEP 23, IPv6 peers BEP 7, scrape BEP 48), sans I/O.

Both sides: the tracker parses announce/scrape query strings and bencodes responses (failures
included); the client builds announce URLs and parses responses.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from hivecast.p2p import bencode
from hivecast.p2p.errors import BencodeError, TrackerError
from hivecast.p2p.tracker.core import AnnounceRequest, AnnounceResult
from hivecast.p2p.wire.messages import compact_peers, parse_compact_peers

MAX_QUERY = 8 * 1024
MAX_RESPONSE = 1024 * 1024


def _parse_query(query: str) -> list[tuple[str, bytes]]:
    """Query pairs with values as raw bytes: info_hash and peer_id are binary, percent-encoded."""
    if len(query) > MAX_QUERY:
        raise TrackerError("query string too long")
    out: list[tuple[str, bytes]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.append((urllib.parse.unquote(key), urllib.parse.unquote_to_bytes(value.replace("+", " "))))
    return out


def _int(params: dict[str, bytes], key: str, default: int | None = None) -> int:
    raw = params.get(key)
    if raw is None:
        if default is None:
            raise TrackerError(f"missing {key}")
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise TrackerError(f"invalid {key}")
    return int(raw)


def parse_announce(query: str, client_ip: str) -> tuple[AnnounceRequest, bool]:
    """An announce request and whether the client wants compact peers."""
    pairs = _parse_query(query)
    params: dict[str, bytes] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    info_hash = params.get("info_hash")
    peer_id = params.get("peer_id")
    if info_hash is None or len(info_hash) != 20:
        raise TrackerError("invalid info_hash")
    if peer_id is None or len(peer_id) != 20:
        raise TrackerError("invalid peer_id")
    port = _int(params, "port")
    if not 0 < port < 65536:
        raise TrackerError("invalid port")
    event = params.get("event", b"").decode("ascii", "replace")
    ip = client_ip
    # A client's own `ip` is only believed when it names the same address family on loopback
    # or private nets; otherwise anyone could point the swarm at a third party.
    claimed = params.get("ip")
    if claimed:
        try:
            addr = ipaddress.ip_address(claimed.decode("ascii"))
            if ipaddress.ip_address(client_ip).is_loopback or ipaddress.ip_address(client_ip).is_private:
                ip = str(addr)
        except (ValueError, UnicodeDecodeError):
            raise TrackerError("invalid ip") from None
    numwant = _int(params, "numwant", -1)
    req = AnnounceRequest(
        info_hash=info_hash, peer_id=peer_id, ip=ip, port=port,
        uploaded=_int(params, "uploaded", 0), downloaded=_int(params, "downloaded", 0),
        left=_int(params, "left", 0), event=event, numwant=None if numwant < 0 else numwant,
    )
    compact = params.get("compact", b"1") != b"0"
    return req, compact


def announce_response(result: AnnounceResult, *, compact: bool) -> bytes:
    d: dict[str, Any] = {
        "interval": result.interval, "min interval": result.min_interval,
        "complete": result.complete, "incomplete": result.incomplete,
    }
    v4 = [(ip, port) for ip, port, _ in result.peers if ":" not in ip]
    v6 = [(ip, port) for ip, port, _ in result.peers if ":" in ip]
    if compact:
        d["peers"] = compact_peers(v4)
        if v6:
            d["peers6"] = compact_peers(v6, v6=True)
    else:
        d["peers"] = [{"ip": ip, "port": port, "peer id": pid} for ip, port, pid in result.peers]
    return bencode.encode(d)


def failure(reason: str) -> bytes:
    return bencode.encode({"failure reason": reason})


def parse_scrape(query: str) -> list[bytes]:
    hashes = [v for k, v in _parse_query(query) if k == "info_hash"]
    if any(len(h) != 20 for h in hashes):
        raise TrackerError("invalid info_hash")
    if len(hashes) > 100:
        raise TrackerError("too many info_hash values")
    return hashes


def scrape_response(stats: dict[bytes, tuple[int, int, int]]) -> bytes:
    files = {h: {"complete": c, "downloaded": d, "incomplete": i} for h, (c, d, i) in stats.items()}
    return bencode.encode({"files": files})


def scrape_url(announce_url: str) -> str | None:
    """BEP 48: replace the last `announce` path segment with `scrape`, if it has one."""
    head, sep, tail = announce_url.rpartition("/")
    if not sep or not tail.startswith("announce"):
        return None
    return f"{head}/scrape{tail[len('announce'):]}"


# -- client side --

def announce_url(
    base: str, *, info_hash: bytes, peer_id: bytes, port: int, uploaded: int, downloaded: int, left: int,
    event: str = "", numwant: int = 50,
) -> str:
    q = (f"info_hash={urllib.parse.quote_from_bytes(info_hash, safe='')}"
         f"&peer_id={urllib.parse.quote_from_bytes(peer_id, safe='')}"
         f"&port={port}&uploaded={uploaded}&downloaded={downloaded}&left={left}"
         f"&compact=1&numwant={numwant}")
    if event:
        q += f"&event={event}"
    return base + ("&" if "?" in base else "?") + q


def parse_announce_response(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    """(interval, peers) from a tracker's response; TrackerError carries its failure reason."""
    try:
        d = bencode.decode(body, max_size=MAX_RESPONSE, max_depth=8)
    except BencodeError as exc:
        raise TrackerError(f"malformed tracker response: {exc}") from None
    if not isinstance(d, dict):
        raise TrackerError("tracker response is not a dictionary")
    reason = d.get(b"failure reason")
    if isinstance(reason, bytes):
        raise TrackerError(reason.decode("utf-8", "replace"))
    interval = d.get(b"interval")
    peers: list[tuple[str, int]] = []
    raw = d.get(b"peers")
    if isinstance(raw, bytes):
        peers += parse_compact_peers(raw)
    elif isinstance(raw, list):
        for p in raw[:1000]:
            if isinstance(p, dict) and isinstance(p.get(b"ip"), bytes) and isinstance(p.get(b"port"), int):
                peers.append((p[b"ip"].decode("ascii", "replace"), p[b"port"]))
    raw6 = d.get(b"peers6")
    if isinstance(raw6, bytes):
        peers += parse_compact_peers(raw6, v6=True)
    return (interval if isinstance(interval, int) and interval > 0 else 1800), peers
