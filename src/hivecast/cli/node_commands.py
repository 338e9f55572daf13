"""`hivecast serve | origin | edge`: run a node in a role until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hivecast.config import ConfigError, Settings, load_settings
from hivecast.logs import setup_logging
from hivecast.net import run

log = logging.getLogger("hivecast")

ROLE_HELP = {
    "serve": "run everything on this machine: ingest, packaging, edge cache, API, web UI (default)",
    "origin": "run an origin: ingest, packaging, API; edges cache its media",
    "edge": "run a caching edge in front of an origin (or a parent edge)",
}


def add_node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--http-port", type=int, metavar="N", help="HTTP port (default 8080; 0 = any free port)")
    p.add_argument("--rtsp-port", type=int, metavar="N", help="RTSP port (default 8554)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default ./hivecast-data)")
    p.add_argument("--log-format", choices=["text", "json"], help="log line format")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--database-url", metavar="URL", help="SQLAlchemy URL (default SQLite in the data dir)")
    p.add_argument("--redis-url", metavar="URL", help="Redis URL for cross-node events")


def flags_from(args: argparse.Namespace, role: str) -> dict[str, Any]:
    names = ["host", "http_port", "rtsp_port", "data_dir", "log_format", "log_level", "database_url",
             "redis_url", "origin_url", "parent_url"]
    flags: dict[str, Any] = {"role": role}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    for switch in ("open_publish", "demo"):
        if getattr(args, switch, False):
            flags[switch] = True
    if getattr(args, "ws_echo", False):
        flags["ws"] = {"echo": True}
    return flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for role, help_text in ROLE_HELP.items():
        p = sub.add_parser(role, help=help_text, description=help_text)
        add_node_flags(p)
        if role in ("serve", "origin"):
            p.add_argument("--open-publish", action="store_true", help="accept publishers without a stream key")
            p.add_argument("--ws-echo", action="store_true", help="expose the /ws/echo WebSocket endpoint")
        if role == "serve":
            p.add_argument("--demo", action="store_true", help="start a synthetic demo live channel")
        if role == "edge":
            p.add_argument("--origin", dest="origin_url", metavar="URL", help="origin to cache")
            p.add_argument("--parent", dest="parent_url", metavar="URL", help="parent (shield) cache")
        p.set_defaults(func=lambda args, role=role: run_node(args, role))


def settings_from_args(args: argparse.Namespace, role: str) -> Settings:
    return load_settings(config_file=args.config, flags=flags_from(args, role))


def run_node(args: argparse.Namespace, role: str) -> int:
    try:
        settings = settings_from_args(args, role)
    except ConfigError as exc:
        print(f"hivecast: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    try:
        return run(_serve(settings))
    except KeyboardInterrupt:
        return 130


async def _serve(settings: Settings) -> int:
    from hivecast.node import StartupError
    from hivecast.node.roles import build_node

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        node = build_node(settings)
        await node.run(stop)
    except StartupError as exc:
        print(f"hivecast: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0
