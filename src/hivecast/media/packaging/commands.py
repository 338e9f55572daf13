"""`hivecast package INPUT -o DIR` and `hivecast play URL`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("package", help="package a video file to HLS and DASH (CMAF segments)")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory (must not exist)")
    p.add_argument("--ladder", default=None, help="transcoded rungs below the source, e.g. 720p,480p,240p")
    p.add_argument("--segment-seconds", type=float, default=4.0, help="target segment duration (1-10 s)")
    p.add_argument("--formats", default="hls,dash",
                   help="comma separated: hls (fMP4), dash, ts (classic HLS, MPEG-TS with audio muxed in)")
    p.add_argument("--force", action="store_true", help="replace the output directory if it exists")
    p.set_defaults(func=_package)

    q = sub.add_parser("play", help="play an HLS or DASH URL without decoding and report quality of experience")
    q.add_argument("url")
    q.add_argument("--duration", type=float, default=None, help="stop after this many seconds of media")
    q.add_argument("--rate", default=None, help="throttle downloads to this bitrate, e.g. 8M or 500k")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.set_defaults(func=_play)


def _package(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hivecast.media.packaging.ladder import LadderError
    from hivecast.media.packaging.vod import PackagingError, package_file

    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), transient=not sys.stderr.isatty()) as bar:
        task = bar.add_task("probe", total=100)

        def progress(percent: float, stage: str) -> None:
            bar.update(task, completed=percent, description=stage)

        try:
            result = package_file(args.input, args.output, ladder=args.ladder,
                                  segment_seconds=args.segment_seconds, formats=formats,
                                  progress=progress, replace=args.force)
        except (PackagingError, LadderError) as exc:
            print(f"hivecast package: {exc}", file=sys.stderr)
            return 1
    for r in result.renditions:
        size = f"{r['width']}x{r['height']} " if r["kind"] == "video" else ""
        print(f"{r['id']}: {r['kind']} {size}{r['codecs']} {r['average_bandwidth'] / 1000:.0f} kbit/s "
              f"(peak {r['bandwidth'] / 1000:.0f}) in {r['segments']} segments")
    print(f"packaged {result.duration:.2f} s into {result.out_dir} in {result.seconds:.2f} s")
    return 0


def _play(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from hivecast.media.abr.player import PlayerError, parse_rate, play

    try:
        rate = parse_rate(args.rate) if args.rate else None
        report = asyncio.run(play(args.url, max_media_seconds=args.duration, rate_bps=rate))
    except PlayerError as exc:
        print(f"hivecast play: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    return 0
