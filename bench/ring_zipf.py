"""Edge ring benchmark: origin requests for a Zipf workload across three `hivecast edge` processes,
without the Chord ring (each edge fills its own cache from the origin) and with it (a miss asks the
key's owner edge, only the owner goes to the origin). Same origin, same trace, one run, loopback.

    .venv/bin/python bench/ring_zipf.py [--objects 2000] [--requests 12000] [--zipf 0.9] [--size 16384]

Prints, per mode: origin requests, requests per edge source (HIT / MISS via owner / origin), the
client-side mean and p99 latency, and the ratio of origin requests without / with the ring.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from hivecast.http import HttpServer, Request, Response

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zipf_trace(objects: int, requests: int, s: float, rng: random.Random) -> list[int]:
    weights = [1.0 / (i + 1) ** s for i in range(objects)]
    total = sum(weights)
    cdf = []
    acc = 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    return [min(bisect.bisect_left(cdf, rng.random()), objects - 1) for _ in range(requests)]


class Origin:
    def __init__(self, size: int) -> None:
        self.size = size
        self.requests = 0
        self.server = HttpServer(self.handle, host="127.0.0.1", port=0, name="bench-origin")

    async def handle(self, request: Request) -> Response:
        if not request.path.startswith("/vod/"):
            return Response.text("not here\n", 404)  # the edges' registration calls: not counted
        self.requests += 1
        body = (request.path.encode() * (self.size // max(1, len(request.path)) + 1))[: self.size]
        return Response(200, [("cache-control", "max-age=3600"), ("content-type", "video/mp2t")], body)


async def start_edges(origin_url: str, tmp: Path, n: int, ring: bool) -> list[tuple[str, asyncio.subprocess.Process]]:
    ports = [(free_port(), free_port(socket.SOCK_DGRAM)) for _ in range(n)]
    seeds = [a for _, r in ports for a in ("--ring-seed", f"127.0.0.1:{r}")] if ring else []
    env = {**os.environ, "HIVECAST_LOG_LEVEL": "warning", "HIVECAST_CDN__HEARTBEAT_INTERVAL": "600"}
    edges = []
    for i, (http, udp) in enumerate(ports):
        extra = ["--ring-port", str(udp), *seeds] if ring else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hivecast", "edge", "--origin", origin_url, "--host", "127.0.0.1",
            "--http-port", str(http), "--data-dir", str(tmp / f"{'ring' if ring else 'solo'}{i}"),
            "--cache-size", "1G", "--memory-size", "512M", *extra, env=env)
        edges.append((f"http://127.0.0.1:{http}", proc))
    return edges


async def wait_ready(c: httpx.AsyncClient, edges: list[tuple[str, asyncio.subprocess.Process]], ring: bool) -> None:
    """Up, and (with the ring) every edge's successor known: no edge thinks it is alone."""
    async with asyncio.timeout(60):
        for url, _ in edges:
            while True:
                try:
                    r = await c.get(url + ("/cdn/v1/ring" if ring else "/healthz"))
                    if r.status_code == 200 and (not ring or not r.json()["node"]["alone"]):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        if ring:
            await asyncio.sleep(2.0)  # a few stabilization rounds so fingers and predecessors settle


async def run_mode(ring: bool, trace: list[int], origin: Origin, tmp: Path, concurrency: int,
                   rng: random.Random) -> dict[str, object]:
    origin.requests = 0
    assert origin.server.port
    edges = await start_edges(f"http://127.0.0.1:{origin.server.port}", tmp, 3, ring)
    latencies: list[float] = []
    sources: Counter[str] = Counter()
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency * 3)) as c:
            await wait_ready(c, edges, ring)
            jobs = [(edges[rng.randrange(3)][0], f"/vod/bench/obj{i}.ts") for i in trace]
            queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            for job in jobs:
                queue.put_nowait(job)

            async def worker() -> None:
                while not queue.empty():
                    url, path = queue.get_nowait()
                    started = time.perf_counter()
                    r = await c.get(url + path)
                    latencies.append(time.perf_counter() - started)
                    if r.status_code != 200 or len(r.content) != origin.size:
                        sources["error"] += 1
                        continue
                    label = r.headers.get("x-cache", "?")
                    if label != "HIT":
                        label += "/" + r.headers.get("x-ring-source", "origin")
                    sources[label] += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            fills: Counter[str] = Counter()
            if ring:
                for url, _ in edges:
                    fills.update((await c.get(url + "/cdn/v1/ring")).json()["fills"])
    finally:
        for _, proc in edges:
            proc.send_signal(signal.SIGTERM)
        for _, proc in edges:
            await proc.wait()
    latencies.sort()
    return {"origin_requests": origin.requests, "sources": dict(sources), "ring_fills": dict(fills),
            "elapsed_s": round(elapsed, 2),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2)}


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=12000)
    ap.add_argument("--zipf", type=float, default=0.9)
    ap.add_argument("--size", type=int, default=16384, help="object size in bytes")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    trace = zipf_trace(args.objects, args.requests, args.zipf, random.Random(args.seed))
    distinct = len(set(trace))
    print(f"trace: {args.requests} requests, {distinct} distinct of {args.objects} objects, Zipf s={args.zipf}, "
          f"{args.size} B objects, 3 edges, requests spread at random over the edges")
    origin = Origin(args.size)
    await origin.server.start()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for ring in (False, True):
                name = "ring" if ring else "no ring"
                results[name] = await run_mode(ring, trace, origin, Path(tmp), args.concurrency,
                                               random.Random(args.seed + 1))
                print(f"{name:8s} {results[name]}")
    finally:
        await origin.server.close(grace=0.2)
    solo = results["no ring"]["origin_requests"]
    ring_count = results["ring"]["origin_requests"]
    assert isinstance(solo, int) and isinstance(ring_count, int)
    print(f"origin requests: {solo} without the ring, {ring_count} with it "
          f"({solo / max(1, ring_count):.2f}x fewer; {distinct} distinct objects is the floor)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
