"""`hivecast dht ping|lookup|stats|put|get`: talk to the mainline DHT from a short-lived node of our own."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hivecast.dht.component import parse_host_port
from hivecast.dht.ids import Address
from hivecast.dht.items import MutableItem, immutable_target, mutable_target
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
    put = dsub.add_parser("put", parents=[common], help="store a BEP 44 item (signed and updatable with --key-file)")
    put.add_argument("value", help="the item's value (a UTF-8 string)")
    put.add_argument("--bootstrap", type=_address, action="append", required=True, metavar="HOST:PORT")
    put.add_argument("--key-file", type=Path, metavar="FILE",
                     help="ed25519 seed (64 hex characters; created if missing): a mutable item under its key")
    put.add_argument("--salt", default="", help="mutable: a name for one of several items under the key")
    put.add_argument("--cas", type=int, metavar="SEQ", help="mutable: only replace the version with this seq")
    put.set_defaults(func=lambda a: _run(_put(a)))
    get = dsub.add_parser("get", parents=[common], help="fetch a BEP 44 item by target, or by key and salt")
    get.add_argument("target", nargs="?", metavar="TARGET", help="an immutable item's 40-hex target")
    get.add_argument("--key", metavar="PUBKEY", help="a mutable item's 64-hex public key")
    get.add_argument("--salt", default="", help="the mutable item's salt")
    get.add_argument("--bootstrap", type=_address, action="append", required=True, metavar="HOST:PORT")
    get.set_defaults(func=lambda a: _run(_get(a)))


@contextlib.asynccontextmanager
async def _joined(args: argparse.Namespace, state_path: Path | None = None) -> AsyncIterator[DhtServer]:
    """A short-lived node of our own, joined through --bootstrap, stopped on the way out."""
    server = DhtServer(host=args.bind, port=args.port, bootstrap=args.bootstrap, state_path=state_path)
    await server.start()
    try:
        await server.wait_bootstrapped(timeout=args.timeout)
        yield server
    finally:
        await server.stop()


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
    async with _joined(args) as server:
        lookup = await server.get_peers(info_hash, timeout=args.timeout)
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
    async with _joined(args, state) as server:
        figures = server.stats()
    _print(figures, args.json)
    return 0


def _print(figures: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


def load_seed(path: Path) -> bytes:
    """The 32-byte ed25519 seed in `path` (hex), made and saved owner-only if the file is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    text = path.read_text().strip()
    seed = bytes.fromhex(text) if len(text) == 64 else b""
    if len(seed) != 32:
        raise ValueError(f"{path}: an ed25519 seed is 64 hex characters")
    return seed


async def _put(args: argparse.Namespace) -> int:
    value = args.value.encode()
    try:
        seed = load_seed(args.key_file) if args.key_file else None
    except (OSError, ValueError) as exc:
        print(f"hivecast dht: {exc}", file=sys.stderr)
        return 2
    try:
        async with _joined(args) as server:
            if seed is None:
                target = await server.put_immutable(value, timeout=args.timeout)
                out: dict[str, object] = {"target": target.hex()}
            else:
                item = await server.put_mutable(seed, value, salt=args.salt.encode(), cas=args.cas,
                                                timeout=args.timeout)
                out = {"target": item.target.hex(), "key": item.k.hex(), "salt": args.salt, "seq": item.seq}
    except ValueError as exc:
        print(f"hivecast dht: {exc}", file=sys.stderr)
        return 2
    _print(out, args.json)
    return 0


async def _get(args: argparse.Namespace) -> int:
    try:
        key = bytes.fromhex(args.key) if args.key else None
        target = bytes.fromhex(args.target) if args.target else None
    except ValueError:
        print("hivecast dht: TARGET and --key are hex", file=sys.stderr)
        return 2
    if (key is None) == (target is None) or (key is not None and len(key) != 32) or (
            target is not None and len(target) != 20):
        print("hivecast dht: give a 40-hex TARGET, or --key with 64 hex characters", file=sys.stderr)
        return 2
    async with _joined(args) as server:
        if key is not None:
            found: object = await server.get_mutable(key, salt=args.salt.encode(), timeout=args.timeout)
        else:
            assert target is not None
            found = await server.get_immutable(target, timeout=args.timeout)
    if found is None:
        print("hivecast dht: no item found", file=sys.stderr)
        return 1
    if isinstance(found, MutableItem):
        out: dict[str, object] = {"target": mutable_target(found.k, found.salt).hex(), "seq": found.seq,
                                  "value": _show(found.v)}
    else:
        out = {"target": immutable_target(found).hex(), "value": _show(found)}
    _print(out, args.json)
    return 0


def _show(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


__all__ = ["info_hash_from", "load_seed", "register"]
