"""`hivecast dht ping|lookup|stats`: talk to the mainline DHT from a short-lived node of our own."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hivecast.dht.component import parse_host_port
from hivecast.dht.ids import Address
from hivecast.dht.server import DhtServer
from hivecast.net import NetError


def info_hash_from(text: str) -> bytes:
    """A 40-hex or 32-base32 info-hash, or a magnet link carrying one (xt=urn:btih:...)."""
    if text.startswith("magnet:"):
        for xt in parse_qs(urlsplit(text).query).get("xt", []):
            if xt.lower().startswith("urn:btih:"):
                text = xt[9:]
                break
        else:
            raise ValueError("the magnet link has no urn:btih info-hash")
    if len(text) == 40:
        return bytes.fromhex(text)
    if len(text) == 32:
        return base64.b32decode(text.upper())
    raise ValueError("an info-hash is 40 hex or 32 base32 characters")


def _address(text: str) -> Address:
    try:
        return parse_host_port(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dht", help="mainline DHT tools: ping a node, look up peers, routing table stats")
    dsub = p.add_subparsers(dest="dht_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bind", default="0.0.0.0", help="local address for our UDP socket")
    common.add_argument("--port", type=int, default=0, help="local UDP port (default: any)")
    common.add_argument("--timeout", type=float, default=20.0, help="seconds to wait")
    common.add_argument("--json", action="store_true", help="print JSON")
    ping = dsub.add_parser("ping", parents=[common], help="send a KRPC ping to HOST:PORT")
    ping.add_argument("address", type=_address, metavar="HOST:PORT")
    ping.set_defaults(func=lambda a: _run(_ping(a)))
    lookup = dsub.add_parser("lookup", parents=[common], help="find peers for an info-hash or magnet link")
    lookup.add_argument("target", metavar="INFOHASH|MAGNET")
    lookup.add_argument("--bootstrap", type=_address, action="append", required=True, metavar="HOST:PORT")
    lookup.set_defaults(func=lambda a: _run(_lookup(a)))
    stats = dsub.add_parser("stats", parents=[common], help="join through bootstrap nodes and print routing table figures")
    stats.add_argument("--bootstrap", type=_address, action="append", default=[], metavar="HOST:PORT")
    stats.add_argument("--data-dir", type=Path, help="use (and update) the routing table saved in DIR/p2p/dht.json")
    stats.add_argument("--node", metavar="URL", help="ask a running hivecast node (its /dht/stats) instead")
    stats.set_defaults(func=lambda a: _run(_stats(a)))


def _run(coro: object) -> int:
    try:
        return int(asyncio.run(coro))  # type: ignore[arg-type]
    except NetError as exc:
        print(f"hivecast dht: {exc}", file=sys.stderr)
        return 1


async def _ping(args: argparse.Namespace) -> int:
    server = DhtServer(host=args.bind, port=args.port)
    await server.start()
    try:
        started = time.monotonic()
        node = await server.ping(args.address, timeout=args.timeout)
        rtt = time.monotonic() - started
    finally:
        await server.stop()
    if node is None:
        print(f"no answer from {args.address[0]}:{args.address[1]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"id": node.id.hex(), "rtt_ms": round(rtt * 1000, 3)}))
    else:
        print(f"{args.address[0]}:{args.address[1]} id={node.id.hex()} rtt={rtt * 1000:.1f} ms")
    return 0


async def _lookup(args: argparse.Namespace) -> int:
    try:
        info_hash = info_hash_from(args.target)
    except ValueError as exc:
        print(f"hivecast dht: {exc}", file=sys.stderr)
        return 2
    server = DhtServer(host=args.bind, port=args.port, bootstrap=args.bootstrap)
    await server.start()
    try:
        await server.wait_bootstrapped(timeout=args.timeout)
        lookup = await server.get_peers(info_hash, timeout=args.timeout)
    finally:
        await server.stop()
    peers = sorted(f"{ip}:{port}" for ip, port in lookup.peers)
    if args.json:
        print(json.dumps({"info_hash": info_hash.hex(), "peers": peers, "hops": lookup.hops,
                          "queries": lookup.stats.queries, "replies": lookup.stats.replies}))
    else:
        print(f"info-hash {info_hash.hex()}: {len(peers)} peers, {lookup.hops} hops, "
              f"{lookup.stats.queries} queries, {lookup.stats.replies} replies")
        for peer in peers:
            print(peer)
    return 0 if peers else 1


def _node_stats(url: str, timeout: float) -> dict[str, object]:
    import urllib.request

    with urllib.request.urlopen(url.rstrip("/") + "/dht/stats", timeout=timeout) as resp:
        body = json.loads(resp.read(1 << 20))
    if not isinstance(body, dict):
        raise ValueError("unexpected answer")
    return body


async def _stats(args: argparse.Namespace) -> int:
    if args.node:
        try:
            figures = await asyncio.to_thread(_node_stats, args.node, args.timeout)
        except (OSError, ValueError) as exc:
            print(f"hivecast dht: cannot read {args.node}/dht/stats: {exc}", file=sys.stderr)
            return 1
        _print(figures, args.json)
        return 0
    state = args.data_dir / "p2p" / "dht.json" if args.data_dir else None
    server = DhtServer(host=args.bind, port=args.port, bootstrap=args.bootstrap, state_path=state)
    await server.start()
    try:
        await server.wait_bootstrapped(timeout=args.timeout)
        figures = server.stats()
    finally:
        await server.stop()
    _print(figures, args.json)
    return 0


def _print(figures: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
