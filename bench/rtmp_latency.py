"""Publish-to-delivery latency through our server: RTMP in, HTTP-FLV and RTMP out (and HLS if served).

`hivecast serve` runs as its own process. This process publishes the pre-encoded clip of
bench/rtmp_fanout.py tag by tag at its real pace with our RTMP client, remembering when each
video tag left, and reads the stream back over HTTP-FLV and RTMP, matching tags by timestamp:
latency = arrival - departure. This is the server's share of publish-to-picture latency (no encoder
or decoder in the path). HTTP-FLV against HLS and LL-HLS, with every picture decoded and checked,
is bench/live_latency.py.

    .venv/bin/python bench/rtmp_latency.py [--batch-ms 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hivecast.rtmp import flv
from hivecast.rtmp.chunk import DATA_AMF0, VIDEO
from hivecast.rtmp.client import RtmpClient
from hivecast.rtmp.session import MediaReceived

sys.path.insert(0, str(Path(__file__).parent))
from rtmp_fanout import CLIP, free_port, make_clip, wait_port


def read_tags() -> list[flv.Tag]:
    return flv.TagReader(max_tag_size=16 << 20).feed(CLIP.read_bytes())


async def publish(url: str, tags: list[flv.Tag], sent: dict[int, float], seconds: float) -> None:
    client = await RtmpClient.open(url)
    await client.publish()
    start = time.monotonic()
    for tag in tags:
        if tag.timestamp / 1000 > seconds:
            break
        delay = start + tag.timestamp / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if tag.tag_type == DATA_AMF0:
            continue
        if tag.tag_type == VIDEO:
            sent.setdefault(tag.timestamp, time.monotonic())
        client.send_media(tag.tag_type, tag.timestamp, tag.payload)
        await client.flush()
    await client.close()


async def read_flv(url: str, sent: dict[int, float], out: list[float], seconds: float) -> None:
    reader = flv.TagReader(max_tag_size=16 << 20)
    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url) as resp:
        deadline = time.monotonic() + seconds
        async for chunk in resp.aiter_raw():
            now = time.monotonic()
            for tag in reader.feed(chunk):
                if tag.tag_type == VIDEO and tag.timestamp in sent and not flv.parse_video(tag.payload).sequence_header:
                    out.append(now - sent[tag.timestamp])
            if now > deadline:
                return


async def read_rtmp(url: str, sent: dict[int, float], out: list[float], seconds: float) -> None:
    client = await RtmpClient.open(url)
    await client.play()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = await client.events(timeout=10)
        now = time.monotonic()
        for ev in events:
            if isinstance(ev, MediaReceived) and ev.message.type_id == VIDEO and ev.message.timestamp in sent:
                out.append(now - sent[ev.message.timestamp])
    await client.close()


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    ms = sorted(v * 1000 for v in values[len(values) // 5 :])  # skip the GOP-cache burst at the start
    return (f"median {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, "
            f"max {ms[-1]:.1f} ms ({len(ms)} frames)")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-ms", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    make_clip()
    tags = read_tags()
    http, rtmp = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hivecast-rtmp-latency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}
    env["HIVECAST_RTMP__BATCH_MS"] = str(args.batch_ms)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", "serve", "--host", "127.0.0.1", "--http-port", str(http), "--rtsp-port",
        str(free_port()), "--rtmp-port", str(rtmp), "--open-publish", "--log-level", "warning", "--data-dir",
        str(workdir / "data"), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_port(rtmp)
        sent: dict[int, float] = {}
        flv_lat: list[float] = []
        rtmp_lat: list[float] = []
        pub = asyncio.create_task(publish(f"rtmp://127.0.0.1:{rtmp}/live/lat", tags, sent, args.seconds + 4))
        await asyncio.sleep(2)
        await asyncio.gather(
            read_flv(f"http://127.0.0.1:{http}/live/lat.flv", sent, flv_lat, args.seconds),
            read_rtmp(f"rtmp://127.0.0.1:{rtmp}/live/lat", sent, rtmp_lat, args.seconds))
        await pub
        print(f"batch_ms={args.batch_ms}")
        print(f"HTTP-FLV publish-to-delivery: {summary(flv_lat)}")
        print(f"RTMP     publish-to-delivery: {summary(rtmp_lat)}")
        print("HLS and LL-HLS against HTTP-FLV: bench/live_latency.py")
    finally:
        server.terminate()
        await server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
