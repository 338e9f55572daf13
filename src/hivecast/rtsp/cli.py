"""`hivecast rtsp pull URL --as NAME`: run a node that pulls a remote RTSP stream and serves it as NAME."""

from __future__ import annotations

import argparse
import sys

from hivecast.cli.node_commands import add_node_flags, flags_from
from hivecast.config import ConfigError, load_settings
from hivecast.logs import setup_logging
from hivecast.net import run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rtsp = sub.add_parser("rtsp", help="RTSP tools: pull a remote stream", description="RTSP tools")
    rtsp_sub = rtsp.add_subparsers(dest="rtsp_command", metavar="COMMAND")
    pull = rtsp_sub.add_parser(
        "pull", help="pull an RTSP stream (with reconnect) and serve it here under a name",
        description="Run a node (serve role) that keeps pulling URL over RTSP/TCP and publishes it "
                    "locally as NAME; readers play rtsp://HOST:RTSP_PORT/NAME. Reconnects with back-off.")
    pull.add_argument("url", help="rtsp://[user:pass@]host[:port]/path of the source")
    pull.add_argument("--as", dest="name", required=True, metavar="NAME", help="local stream name")
    pull.add_argument("--transport", choices=["tcp", "udp"], default="tcp",
                      help="how media comes from the source: TCP interleaved (default) or RTP over UDP")
    pull.add_argument("--push", metavar="URL", help="also publish the pulled stream to this rtsp:// URL (ANNOUNCE/RECORD)")
    add_node_flags(pull)
    pull.set_defaults(func=run_pull)

    def usage(args: argparse.Namespace) -> int:
        rtsp.print_help()
        return 2

    rtsp.set_defaults(func=usage)


def run_pull(args: argparse.Namespace) -> int:
    if not args.url.startswith("rtsp://"):
        print("hivecast: the source must be an rtsp:// URL", file=sys.stderr)
        return 2
    flags = flags_from(args, "serve")
    try:
        base = load_settings(config_file=args.config, flags=flags)
        url = args.url if args.transport == "tcp" else args.url + "#udp"
        pulls = {**base.rtsp.pull, args.name.strip("/"): url}
        rtsp: dict[str, object] = {"pull": pulls}
        if args.push:
            rtsp["push"] = {**base.rtsp.push, args.name.strip("/"): args.push}
        settings = load_settings(config_file=args.config, flags={**flags, "rtsp": rtsp})
    except ConfigError as exc:
        print(f"hivecast: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    from hivecast.cli.node_commands import _serve

    try:
        return run(_serve(settings))
    except KeyboardInterrupt:
        return 130
