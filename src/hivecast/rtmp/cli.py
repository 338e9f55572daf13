"""`hivecast rtmp push | pull | play`: relay tools that work against any RTMP server, ours included.

    hivecast rtmp push NAME URL        play NAME from the local node and publish it to URL
    hivecast rtmp pull URL --as NAME   play URL and publish it to the local node as NAME
    hivecast rtmp play URL             play URL for a while and print what arrives

Push and pull reconnect with exponential back-off until interrupted. The local node is
`--server` (default rtmp://127.0.0.1:1935/live); a stream key goes in with `--key`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from hivecast.net import NetError, run
from hivecast.rtmp.chunk import AUDIO, VIDEO
from hivecast.rtmp.client import RtmpClient
from hivecast.rtmp.errors import RtmpError
from hivecast.rtmp.relay import Forwarder
from hivecast.rtmp.session import MediaReceived, MetadataReceived


def _local(server: str, name: str, key: str | None) -> str:
    return f"{server.rstrip('/')}/{name}" + (f"?key={key}" if key else "")


async def _forward(source: str, target: str, seconds: float | None) -> int:
    fwd = Forwarder(source, target)
    fwd.start()
    started = time.monotonic()
    last = ""
    try:
        while seconds is None or time.monotonic() - started < seconds:
            await asyncio.sleep(1.0)
            st = fwd.status()
            line = f"{st['state']} attempts={st['attempts']} bytes={st['bytes']} {st['last_error']}"
            if line != last:
                print(line, flush=True)
                last = line
    finally:
        await fwd.stop()
    return 0


async def _play(url: str, seconds: float) -> int:
    try:
        client = await RtmpClient.open(url)
        await client.play()
    except (NetError, RtmpError) as exc:
        print(f"error: {exc}")
        return 1
    counts = {AUDIO: 0, VIDEO: 0}
    size = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            for ev in await client.events(timeout=10):
                if isinstance(ev, MediaReceived) and ev.message.type_id in counts:
                    counts[ev.message.type_id] += 1
                    size += len(ev.message.payload)
                elif isinstance(ev, MetadataReceived):
                    print(f"metadata: {ev.metadata}")
    except (NetError, RtmpError, TimeoutError) as exc:
        print(f"stopped: {exc}")
    finally:
        await client.close()
    elapsed = max(0.001, time.monotonic() - started)
    print(f"video messages={counts[VIDEO]} audio messages={counts[AUDIO]} kbit/s={size * 8 / elapsed / 1000:.0f}")
    return 0


def _add_port_flag(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`--rtmp-port N` on the node commands (registered before us): it sets [rtmp] port through the
    environment layer (HIVECAST_RTMP__PORT), since the node's flag mapping names a fixed set of fields."""
    for role in ("serve", "origin"):
        parser = sub.choices.get(role)
        if parser is None:
            continue
        parser.add_argument("--rtmp-port", type=int, metavar="N", help="RTMP port (default 1935; 0 = any free port)")
        inner = parser.get_default("func")
        if inner is None:
            continue

        def func(args: argparse.Namespace, inner: Any = inner) -> int:
            if getattr(args, "rtmp_port", None) is not None:
                os.environ["HIVECAST_RTMP__PORT"] = str(args.rtmp_port)
            return int(inner(args))

        parser.set_defaults(func=func)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_port_flag(sub)
    p = sub.add_parser("rtmp", help="RTMP relay tools: push a stream out, pull one in, play one")
    cmds = p.add_subparsers(dest="rtmp_command", metavar="ACTION", required=True)
    for name in ("push", "pull"):
        c = cmds.add_parser(name, help="push NAME to URL" if name == "push" else "pull URL into the node as NAME")
        if name == "push":
            c.add_argument("name", help="live stream on the local node")
            c.add_argument("url", help="rtmp:// or rtmps:// target, with its stream key")
        else:
            c.add_argument("url", help="rtmp:// or rtmps:// source")
            c.add_argument("--as", dest="name", required=True, help="stream name on the local node")
        c.add_argument("--server", default="rtmp://127.0.0.1:1935/live", help="the local node's RTMP application URL")
        c.add_argument("--key", help="publish key for the local node (pull)")
        c.add_argument("--seconds", type=float, help="stop after this long (default: until interrupted)")
        c.set_defaults(func=_run_forward)
    c = cmds.add_parser("play", help="play URL and print what arrives")
    c.add_argument("url")
    c.add_argument("--seconds", type=float, default=5.0)
    c.set_defaults(func=lambda args: run(_play(args.url, args.seconds)))


def _run_forward(args: argparse.Namespace) -> int:
    if args.rtmp_command == "push":
        source, target = _local(args.server, args.name, None), args.url
    else:
        source, target = args.url, _local(args.server, args.name, args.key)
    try:
        return int(run(_forward(source, target, args.seconds)))
    except KeyboardInterrupt:
        return 130
