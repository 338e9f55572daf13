"""Entry point: `hivecast SUBCOMMAND ...` (also `python -m hivecast`).

Each capability contributes its subcommands through a module in COMMAND_MODULES with a
`register(subparsers)` function; the parser sets `func(args) -> int` on each subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hivecast import __version__

COMMAND_MODULES = [
    "hivecast.cli.node_commands",
    "hivecast.media.packaging.commands",
    "hivecast.rtsp.cli",
    "hivecast.rtmp.cli",
    "hivecast.cdn.cli",
    "hivecast.api.cli",
    "hivecast.p2p.cli",
    "hivecast.dht.cli",
    "hivecast.sim.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hivecast",
        description="Self-hosted live and on-demand video: RTSP/RTMP ingest, HLS/DASH, CDN edge, chat, P2P.",
    )
    parser.add_argument("--version", action="version", version=f"hivecast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
