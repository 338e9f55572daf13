"""Edge benchmark: our edge (one process) against nginx proxy_cache (one worker), same origin,
same objects, same client (wrk), one run on loopback; then eviction policy hit ratios on a Zipf
trace with a cache a tenth of the catalogue.

    .venv/bin/python bench/cdn_bench.py [--duration 5] [--rounds 5] [--connections 50]

Needs wrk and nginx (scripts/provision.sh installs both). Prints each figure and the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=edge:10m max_size=1g inactive=60m use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_lock on;
            proxy_cache_revalidate on;
            proxy_cache_use_stale error timeout updating;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, duration: int, connections: int, pids: list[int]) -> tuple[float, float, float]:
    """(requests/s, bytes/s, requests per CPU-second of the server) from one wrk run, one thread."""
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url], capture_output=True,
                         text=True, timeout=duration + 60).stdout
    cpu = max(1e-3, cpu_seconds(pids) - cpu_before)
    m_req = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    assert m is not None and m_req is not None, out
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[m.group(2)]
    return rps, float(m.group(1)) * scale, int(m_req.group(1)) / cpu


def policy_ratios(catalog: int, requests: int, alpha: float) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "src"))
    from hivecast.cdn.simulate import hit_ratio, zipf_trace

    trace = zipf_trace(catalog=catalog, requests=requests, alpha=alpha, rng=random.Random(42))
    return {name: hit_ratio(name, trace, catalog // 10) for name in ("lru", "lfu", "ttl", "sieve", "s3fifo")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per cache")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--segment-connections", type=int, default=16)
    ap.add_argument("--policy", default="s3fifo")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/provision.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="cdn-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        data = work / "origin"
        media = data / "media" / "vod" / "bench"
        media.mkdir(parents=True)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
        i = 0
        while len("\n".join(lines)) < 1000:
            lines += ["#EXTINF:2.000,", f"seg{i:05d}.ts"]
            i += 1
        (media / "index.m3u8").write_text("\n".join(lines)[:1024])
        (media / "seg.ts").write_bytes(os.urandom(2 * 1024 * 1024))
        origin_port, edge_port, nginx_port = free_port(), free_port(), free_port()
        hv = [sys.executable, "-m", "hivecast"]
        env = {**os.environ, "HIVECAST_LOG_LEVEL": "warning"}
        procs.append(subprocess.Popen([*hv, "origin", "--host", "127.0.0.1", "--http-port", str(origin_port),
                                       "--data-dir", str(data)], env=env))
        wait_http(f"http://127.0.0.1:{origin_port}/healthz")
        procs.append(subprocess.Popen([*hv, "edge", "--origin", f"http://127.0.0.1:{origin_port}", "--host",
                                       "127.0.0.1", "--http-port", str(edge_port), "--data-dir", str(work / "edge"),
                                       "--cache-size", "1G", "--policy", args.policy], env=env))
        nginx_dir = work / "nginx"
        (nginx_dir / "cache").mkdir(parents=True)
        conf = nginx_dir / "nginx.conf"
        # as root, nginx's worker would drop to `nobody` and could not use our private temp dir
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, dir=nginx_dir, origin=origin_port, port=nginx_port))
        procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(nginx_dir)]))
        wait_http(f"http://127.0.0.1:{edge_port}/healthz")
        wait_http(f"http://127.0.0.1:{nginx_port}/vod/bench/seg.ts")
        bases = {"hivecast": f"http://127.0.0.1:{edge_port}/vod/bench",
                 "nginx": f"http://127.0.0.1:{nginx_port}/vod/bench"}
        for name, base in bases.items():
            for _ in range(3):  # warm: the second and later requests are hits
                get(f"{base}/index.m3u8")
                get(f"{base}/seg.ts")
            status, headers, _ = get(f"{base}/seg.ts")
            print(f"{name}: warm check status={status} x-cache={headers.get('x-cache')}", flush=True)
        # The machine is shared: alternate the two caches over several short rounds and compare
        # medians, so a burst of someone else's load does not land on one side only.
        nginx_master = procs[-1].pid
        # Only the worker serves; the cache manager and the (short-lived) cache loader do not count.
        children = subprocess.run(["pgrep", "-P", str(nginx_master)], capture_output=True, text=True).stdout.split()
        workers = [int(p) for p in children
                   if b"worker process" in Path(f"/proc/{p}/cmdline").read_bytes()]
        pids = {"hivecast": [procs[1].pid], "nginx": workers}
        rps: dict[str, list[float]] = {name: [] for name in bases}
        bps: dict[str, list[float]] = {name: [] for name in bases}
        per_cpu: dict[str, list[float]] = {name: [] for name in bases}
        for round_no in range(args.rounds):
            order = list(bases) if round_no % 2 == 0 else list(reversed(bases))
            for name in order:
                r, _, c = wrk(f"{bases[name]}/index.m3u8", args.duration, args.connections, pids[name])
                rps[name].append(r)
                per_cpu[name].append(c)
                bps[name].append(wrk(f"{bases[name]}/seg.ts", args.duration, args.segment_connections, pids[name])[1])
                print(f"round {round_no + 1} {name}: 1 KB playlist {rps[name][-1]:,.0f} req/s "
                      f"({c:,.0f} per CPU-second); 2 MB segments {bps[name][-1] * 8 / 1e9:.2f} Gbit/s", flush=True)
        med = {name: (statistics.median(rps[name]), statistics.median(bps[name])) for name in bases}
        for name, (r, b) in med.items():
            print(f"{name} median: 1 KB playlist {r:,.0f} req/s; 2 MB segments {b * 8 / 1e9:.2f} Gbit/s")
        print(f"ratio small objects (req/s): {med['hivecast'][0] / med['nginx'][0]:.2f}x nginx (aim >= 0.5)")
        eff = {name: statistics.median(per_cpu[name]) for name in bases}
        print(f"ratio small objects (requests per server CPU-second, independent of machine load): "
              f"{eff['hivecast'] / eff['nginx']:.2f}x nginx ({eff['hivecast']:,.0f} vs {eff['nginx']:,.0f})")
        print(f"ratio segments (throughput): {med['hivecast'][1] / med['nginx'][1]:.2f}x nginx (aim >= 0.8)")
    finally:
        for p in procs:
            if p.poll() is not None:
                print(f"process {p.args} exited early with {p.returncode}", file=sys.stderr)
        for p in reversed(procs):
            with_signal(p)
        shutil.rmtree(work, ignore_errors=True)
    ratios = policy_ratios(catalog=10_000, requests=200_000, alpha=0.8)
    print("hit ratio, Zipf(0.8) trace, 200k requests over 10k segments, cache = 1k segments:")
    for name, value in ratios.items():
        print(f"  {name:7s} {value:.4f}")
    print(f"s3fifo / lru = {ratios['s3fifo'] / ratios['lru']:.3f}; sieve / lru = {ratios['sieve'] / ratios['lru']:.3f}")
    return 0


def with_signal(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    raise SystemExit(main())
