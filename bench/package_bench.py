"""Packaging and live-latency benchmark (issue #4), ours against ffmpeg in the same run.

1. On demand: package a 5-minute 1080p H.264/AAC file to HLS + DASH without transcoding with
   `hivecast.media.packaging.vod.package_file`, against `ffmpeg -c copy -f hls` plus `-f dash`
   (fMP4 segments, 4 s). Prints both wall times and the ratio ours / ffmpeg.
2. Live: ffmpeg publishes 320x180 over RTSP into a node; the playlist's live edge (PROGRAM-DATE-TIME
   plus listed media) is compared with the wall clock at each reload, standard HLS (2 s segments)
   against LL-HLS (0.5 s parts, blocking reload). Prints the median and worst lag of each.

The 1080p source is generated once into ~/.cache/hivecast-bench (outside git).
Run: .venv/bin/python bench/package_bench.py [--skip-vod] [--skip-live] [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import m3u8

CACHE = Path.home() / ".cache" / "hivecast-bench"


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def source(seconds: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"1080p-{seconds}s.mp4"
    if not path.exists():
        print(f"generating {path} (once)...", flush=True)
        tmp = path.with_suffix(".tmp.mp4")
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
                        "-i", f"testsrc2=duration={seconds}:size=1920x1080:rate=30",
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p", "-b:v", "6M",
                        "-c:a", "aac", "-b:a", "128k", str(tmp)], check=True)
        tmp.rename(path)
    return path


def bench_vod(src: Path, rounds: int) -> None:
    from hivecast.media.packaging.vod import package_file

    ff = ffmpeg_exe()
    ours_times, theirs_times = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            t = time.perf_counter()
            package_file(src, root / "ours", segment_seconds=4.0, formats={"hls", "dash"})
            ours_times.append(time.perf_counter() - t)

            (root / "hls").mkdir()
            (root / "dash").mkdir()
            t = time.perf_counter()
            subprocess.run([ff, "-v", "error", "-i", str(src), "-map", "0", "-c", "copy", "-f", "hls",
                            "-hls_time", "4", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                            str(root / "hls" / "index.m3u8")], check=True)
            subprocess.run([ff, "-v", "error", "-i", str(src), "-map", "0", "-c", "copy", "-f", "dash",
                            "-seg_duration", "4", "-use_timeline", "1", str(root / "dash" / "manifest.mpd")],
                           check=True)
            theirs_times.append(time.perf_counter() - t)
    ours, theirs = min(ours_times), min(theirs_times)
    print(f"VOD package {src.name}: hivecast {ours:.2f} s, ffmpeg (hls + dash) {theirs:.2f} s, "
          f"ratio {ours / theirs:.2f}x (best of {rounds})")


def publish(port: int, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ffmpeg_exe(), "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp", f"rtsp://127.0.0.1:{port}/bench"])


async def live_lag(low_latency: bool, seconds: float) -> list[float]:
    from hivecast.config import load_settings
    from hivecast.node.roles import build_node

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(flags={
            "host": "127.0.0.1", "http_port": 0, "rtsp_port": 0, "data_dir": tmp, "open_publish": True,
            "packaging": {"segment_seconds": 2.0, "part_seconds": 0.5, "low_latency": low_latency},
        }, environ={})
        node = build_node(settings)
        await node.start()
        proc = publish(node.services["rtsp_port"], seconds + 8)
        url = f"http://127.0.0.1:{node.services['http_port']}/live/bench/v0/index.m3u8"
        lags: list[float] = []
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    r = await client.get(url)
                    if r.status_code == 200 and r.text.count("#EXTINF") >= 2:
                        break
                    await asyncio.sleep(0.2)
                end = time.monotonic() + seconds
                query = ""
                while time.monotonic() < end:
                    r = await client.get(url + query)
                    fetched = time.time()
                    pl = m3u8.loads(r.text)
                    lag = _lag(pl, fetched, low_latency)
                    if lag is not None:
                        lags.append(lag)
                    if low_latency and pl.segments:
                        last = pl.segments[-1]
                        msn = pl.media_sequence + len(pl.segments) - 1
                        part = len(last.parts) if last.uri is None else 0
                        if last.uri is not None:
                            msn += 1
                        query = f"?_HLS_msn={msn}&_HLS_part={part}"
                    else:
                        await asyncio.sleep(0.25)
        finally:
            proc.kill()
            proc.wait()
            await node.stop()
        return lags


def _lag(pl: m3u8.M3U8, fetched: float, parts: bool) -> float | None:
    pdt = None
    t = 0.0
    for seg in pl.segments:
        if seg.program_date_time is not None:
            pdt = seg.program_date_time.timestamp()
            t = 0.0
        if seg.uri is not None:
            t += seg.duration
        elif parts:
            t += sum(p.duration for p in seg.parts)
    return None if pdt is None else fetched - (pdt + t)


def bench_live(seconds: float) -> None:
    for ll in (False, True):
        lags = asyncio.run(live_lag(ll, seconds))
        name = "LL-HLS (0.5 s parts)" if ll else "HLS (2 s segments)"
        if lags:
            print(f"live {name}: edge lag median {statistics.median(lags):.2f} s, "
                  f"worst {max(lags):.2f} s over {len(lags)} reloads")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--live-seconds", type=float, default=20)
    ap.add_argument("--skip-vod", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    args = ap.parse_args()
    if not args.skip_vod:
        bench_vod(source(args.seconds), args.rounds)
    if not args.skip_live:
        bench_live(args.live_seconds)


if __name__ == "__main__":
    main()
