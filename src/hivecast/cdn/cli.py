"""CDN commands: the edge's cache flags (and `--workers N`), and `hivecast router` (DNS + 302).

Adds flags to the `edge` subcommand defined by hivecast.cli.node_commands, so this module must
come after it in COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from hivecast.config import ConfigError, load_settings
from hivecast.logs import setup_logging
from hivecast.net import run

log = logging.getLogger("hivecast.cdn")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.choices.get("edge")
    if edge is not None:
        edge.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache directory (default DATA_DIR/cache)")
        edge.add_argument("--cache-size", metavar="SIZE", help="disk cache budget, e.g. 10G (default 1G)")
        edge.add_argument("--memory-size", metavar="SIZE", help="memory tier budget (default 64M)")
        edge.add_argument("--policy", choices=["lru", "lfu", "ttl", "s3fifo", "sieve"], help="eviction policy")
        edge.add_argument("--workers", type=int, metavar="N", help="processes sharing the port (SO_REUSEPORT)")
        edge.add_argument("--region", help="region this edge serves (for routing)")
        edge.add_argument("--public-url", metavar="URL", help="URL clients reach this edge at")
        edge.add_argument("--edge-id", metavar="ID", help="id at the origin (default host:port)")
        edge.add_argument("--ring-port", type=int, metavar="N",
                          help="join the region's Chord ring with a UDP node on this port (0: any)")
        edge.add_argument("--ring-seed", action="append", metavar="HOST:PORT",
                          help="a ring member to join through (repeatable; implies the ring)")
        edge.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
        edge.set_defaults(func=run_edge)
    p = sub.add_parser("router", help="CDN request router: authoritative DNS for the edge zone, and HTTP 302",
                       description="Answer DNS queries for ZONE with the best healthy edge for the client's "
                                   "network; optionally redirect HTTP requests to it.")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML settings: [cdn] regions (CIDR -> region), dns_ttl, health_interval")
    p.add_argument("--dns-port", type=int, required=True, metavar="N")
    p.add_argument("--zone", required=True, help="zone we are authoritative for, e.g. cdn.example.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--origin", metavar="URL", help="origin whose edge registry we read")
    p.add_argument("--edge", action="append", default=[], metavar="ID=URL[@REGION]",
                   help="a static edge (repeatable)")
    p.add_argument("--region-map", action="append", default=[], metavar="CIDR=REGION",
                   help="client network to region (repeatable)")
    p.add_argument("--http-port", type=int, metavar="N", help="also serve 302 redirects on this port")
    p.add_argument("--ttl", type=int, help="answer TTL in seconds (default [cdn] dns_ttl, 10)")
    p.add_argument("--health-interval", type=float, help="seconds between edge health checks (default 2)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=run_router)


def _cdn_flags(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("cache_dir", "cache_size", "memory_size", "policy", "workers", "region", "public_url", "edge_id"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if args.worker_index:
        out["worker_index"] = args.worker_index
    if getattr(args, "ring_port", None) is not None or getattr(args, "ring_seed", None):
        out["ring"] = True
        if args.ring_port is not None:
            out["ring_port"] = args.ring_port
        if args.ring_seed:
            out["ring_seeds"] = args.ring_seed
    return out


def run_edge(args: argparse.Namespace) -> int:
    from hivecast.cli.node_commands import _serve, flags_from

    flags = flags_from(args, "edge")
    flags["cdn"] = _cdn_flags(args)
    try:
        settings = load_settings(config_file=args.config, flags=flags)
    except ConfigError as exc:
        print(f"hivecast: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    workers = settings.cdn.workers
    children: list[subprocess.Popen[bytes]] = []
    if workers > 1 and settings.cdn.worker_index == 0:
        if settings.http_port == 0:
            print("hivecast: --workers needs a fixed --http-port", file=sys.stderr)
            return 2
        argv = [a for a in sys.argv[1:]]
        for index in range(1, workers):
            children.append(subprocess.Popen([sys.executable, "-m", "hivecast", *argv, "--worker-index", str(index)]))
    try:
        return run(_serve(settings))
    except KeyboardInterrupt:
        return 130
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()


def parse_edge_arg(text: str) -> dict[str, Any]:
    edge_id, eq, rest = text.partition("=")
    if not eq or not rest.startswith("http://"):
        raise ValueError(f"--edge {text!r}: expected ID=http://HOST:PORT[@REGION]")
    url, _, region = rest.partition("@")
    return {"id": edge_id, "url": url, "region": region or "default", "healthy": True, "draining": False,
            "load": {}}


def run_router(args: argparse.Namespace) -> int:
    setup_logging("text", args.log_level)
    try:
        cdn = load_settings(config_file=args.config, check_paths=False).cdn
    except ConfigError as exc:
        print(f"hivecast: config error: {exc}", file=sys.stderr)
        return 2
    if args.ttl is None:
        args.ttl = cdn.dns_ttl
    if args.health_interval is None:
        args.health_interval = cdn.health_interval
    try:
        static = [parse_edge_arg(e) for e in args.edge]
        regions = dict(cdn.regions)
        for item in args.region_map:
            cidr, _, region = item.partition("=")
            regions[cidr] = region
    except ValueError as exc:
        print(f"hivecast: {exc}", file=sys.stderr)
        return 2
    if args.origin is None and not static:
        print("hivecast: router needs --origin URL or at least one --edge", file=sys.stderr)
        return 2
    try:
        return run(_route(args, static, regions))
    except KeyboardInterrupt:
        return 130


async def _route(args: argparse.Namespace, static: list[dict[str, Any]], regions: dict[str, str]) -> int:
    from hivecast.cdn.dns_router import DnsResponder, DnsRouter, EdgeDirectory
    from hivecast.cdn.http_router import RedirectRouter
    from hivecast.cdn.selection import RegionMap
    from hivecast.http import HttpServer
    from hivecast.net.errors import NetError

    try:
        region_map = RegionMap.from_config(regions)
    except ValueError as exc:
        print(f"hivecast: bad --region-map: {exc}", file=sys.stderr)
        return 2
    directory = EdgeDirectory(origin_url=args.origin, static=static, health_interval=args.health_interval)
    responder = DnsResponder(args.zone, regions=region_map, ttl=args.ttl)
    dns = DnsRouter(responder, directory.edges)
    http: HttpServer | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await dns.start(args.host, args.dns_port)
        if args.http_port is not None:
            http = HttpServer(RedirectRouter(directory.edges, region_map), host=args.host, port=args.http_port,
                              name="router-http")
            await http.start()
    except NetError as exc:
        print(f"hivecast: cannot start router: {exc}", file=sys.stderr)
        return 1
    log.info("router for %s on udp %s:%d (pid %d)", args.zone, args.host, dns.port, os.getpid())
    task = loop.create_task(directory.run())
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dns.aclose()
        if http is not None:
            await http.close(grace=0.2)
        await directory.close()
    return 0
