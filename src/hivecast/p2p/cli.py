"""`hivecast torrent create | info | download | seed`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

from hivecast.net import run
from hivecast.p2p.errors import P2PError
from hivecast.p2p.metainfo import create_torrent, read_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent


def _peer(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("peer must be HOST:PORT")
    return host, int(port)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("torrent", help="create, inspect, download and seed torrents")
    tsub = p.add_subparsers(dest="torrent_command", metavar="ACTION", required=True)

    c = tsub.add_parser("create", help="make a .torrent for a file or directory")
    c.add_argument("path", type=Path)
    c.add_argument("-o", "--output", type=Path, help="where to write it (default PATH.torrent)")
    c.add_argument("-t", "--tracker", action="append", default=[], help="announce URL (repeatable)")
    c.add_argument("-w", "--web-seed", action="append", default=[], help="web seed URL, BEP 19 (repeatable)")
    c.add_argument("--piece-length", type=int, help="bytes per piece (default: chosen by size)")
    c.add_argument("--hybrid", action="store_true", help="hybrid v1+v2 torrent (BEP 52)")
    c.set_defaults(func=_create)

    i = tsub.add_parser("info", help="show what a .torrent holds")
    i.add_argument("file", type=Path)
    i.set_defaults(func=_info)

    d = tsub.add_parser("download", help="download a torrent or magnet link")
    d.add_argument("source", metavar="MAGNET_OR_FILE")
    d.add_argument("-o", "--output", type=Path, default=Path("."), help="directory to save into")
    d.add_argument("--peer", type=_peer, action="append", default=[], help="HOST:PORT to connect to (repeatable)")
    d.add_argument("--port", type=int, default=0, help="listen port (default any)")
    d.add_argument("--host", default="0.0.0.0", help="listen address")
    d.add_argument("--seed", action="store_true", help="keep seeding after the download")
    d.add_argument("--timeout", type=float, help="give up after this many seconds")
    d.set_defaults(func=_download)

    s = tsub.add_parser("seed", help="seed a torrent from files on disk")
    s.add_argument("file", type=Path, help=".torrent file")
    s.add_argument("-d", "--dir", type=Path, default=Path("."), help="directory holding the torrent's files")
    s.add_argument("--port", type=int, default=6881)
    s.add_argument("--host", default="0.0.0.0")
    s.set_defaults(func=_seed)


def _create(args: argparse.Namespace) -> int:
    try:
        data = run(create_torrent(args.path, announce=args.tracker, web_seeds=args.web_seed,
                                          piece_length=args.piece_length, hybrid=args.hybrid))
    except (P2PError, OSError) as exc:
        print(f"hivecast torrent create: {exc}", file=sys.stderr)
        return 1
    out = args.output or args.path.with_name(args.path.name + ".torrent")
    out.write_bytes(data)
    from hivecast.p2p.metainfo import parse_torrent

    print(f"{out}  info-hash {parse_torrent(data).info.info_hash.hex()}")
    return 0


def _info(args: argparse.Namespace) -> int:
    try:
        meta = read_torrent(args.file)
    except (P2PError, OSError) as exc:
        print(f"hivecast torrent info: {exc}", file=sys.stderr)
        return 1
    info = meta.info
    print(f"name:         {info.name}")
    print(f"info-hash:    {info.info_hash.hex()}")
    if info.info_hash_v2:
        print(f"info-hash v2: {info.info_hash_v2.hex()} (hybrid)")
    print(f"size:         {info.total_length} bytes in {info.num_pieces} pieces of {info.piece_length}")
    print(f"private:      {'yes' if info.private else 'no'}")
    for url in meta.trackers:
        print(f"tracker:      {url}")
    for url in meta.url_list:
        print(f"web seed:     {url}")
    for f in info.files:
        if not f.pad:
            print(f"  {f.length:>14}  {'/'.join(f.path)}")
    return 0


def _bar(t: Torrent, started: float) -> str:
    now = time.monotonic()
    got = t.downloaded
    rate = got / max(now - started, 1e-3)
    left = t.left if t.info is not None else 0
    eta = f"{left / rate:.0f}s" if rate > 0 and t.info is not None else "?"
    width = 30
    filled = int(t.progress * width)
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {t.progress * 100:5.1f}%  "
            f"{rate / 1e6:6.2f} MB/s  peers {len(t.peers):3d}  ETA {eta:>6}")


async def _run_download(args: argparse.Namespace) -> int:
    from hivecast.p2p.client import open_source

    session = Session(SessionOptions(host=args.host, port=args.port))
    await session.start()
    try:
        torrent = await session.add(open_source(args.source, args.output, peers=args.peer))
        started = time.monotonic()
        deadline = None if args.timeout is None else started + args.timeout
        tty = sys.stderr.isatty()
        while not torrent.completed.is_set():
            if deadline is not None and time.monotonic() > deadline:
                print("\nhivecast torrent download: timed out", file=sys.stderr)
                return 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await torrent.completed.wait()
            line = _bar(torrent, started)
            print(line if tty else line.strip(), end="" if tty else "\n", file=sys.stderr, flush=True)
        print(f"\ndone: {torrent.info.name if torrent.info else ''} -> {args.output}", file=sys.stderr)
        if args.seed:
            print(f"seeding on port {session.port}; Ctrl-C to stop", file=sys.stderr)
            await asyncio.Event().wait()
        return 0
    finally:
        await session.close()


def _download(args: argparse.Namespace) -> int:
    try:
        return run(_run_download(args))
    except (P2PError, OSError) as exc:
        print(f"hivecast torrent download: {exc}", file=sys.stderr)
        return 1


async def _run_seed(args: argparse.Namespace) -> int:
    meta = read_torrent(args.file)
    session = Session(SessionOptions(host=args.host, port=args.port))
    await session.start()
    try:
        t = await session.add(Torrent.from_metainfo(meta, args.dir, seed_only=True))
        if not t.completed.is_set():
            print(f"warning: only {t.progress * 100:.1f}% of the files verify", file=sys.stderr)
        print(f"seeding {meta.info.name} ({meta.info.info_hash.hex()}) on port {session.port}", file=sys.stderr)
        await asyncio.Event().wait()
        return 0
    finally:
        await session.close()


def _seed(args: argparse.Namespace) -> int:
    try:
        return run(_run_seed(args))
    except (P2PError, OSError) as exc:
        print(f"hivecast torrent seed: {exc}", file=sys.stderr)
        return 1
