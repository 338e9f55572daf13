"""REST API throughput: an authenticated list GET and a POST on a real node, against a bare
FastAPI hello-world (GET and POST) served the same way (our HTTP front door + ASGI bridge),
in one run, with wrk on loopback (an asyncio client when wrk is not installed).

    .venv/bin/python bench/api_bench.py [--duration 10] [--connections 16]

Each server runs in its own process with uvloop; the load generator is a third process. Besides
req/s and p99, each case prints the server's CPU per request (its process's user + system time over
the run, from /proc): on a shared machine that moves much less with other processes' load.

Profiling what a request costs: run a node alone (`python tests/e2e/_api_node.py DIR PORT`), load it
with wrk as below, and sample it with `py-spy record --gil -p PID -d 10 -f raw -o out.raw`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

HERE = Path(__file__).resolve()


class Item(BaseModel):
    body: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- servers (child processes) ----
async def serve_node(data_dir: str, port: int, database_url: str | None) -> None:
    from hivecast.config import load_settings
    from hivecast.node.roles import build_node

    flags = {"role": "serve", "host": "127.0.0.1", "http_port": port, "rtsp_port": 0, "data_dir": Path(data_dir),
             "log_level": "error",
             "api": {"admin_username": "admin", "admin_password": "adminpass1", "rate_limit": 10**9,
                     "rate_limit_ip": 10**9, "rate_limit_login": 10**9}}
    if database_url:
        flags["database_url"] = database_url
    node = build_node(load_settings(flags=flags, environ={}))
    await node.start()
    await _until_signal()
    await node.stop()


async def serve_hello(port: int) -> None:
    from fastapi import FastAPI

    from hivecast.http import AsgiHandler, HttpServer

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/hello")
    async def echo(item: Item) -> Item:
        return item

    server = HttpServer(AsgiHandler(app), host="127.0.0.1", port=port)
    await server.start()
    await _until_signal()
    await server.close(grace=0.5)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()


def child_main(argv: list[str]) -> None:
    import uvloop

    if argv[0] == "node":
        uvloop.run(serve_node(argv[1], int(argv[2]), argv[3] if len(argv) > 3 else None))
    else:
        uvloop.run(serve_hello(int(argv[1])))


def spawn(*args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(HERE), "--child", *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        raise SystemExit(f"server {args} did not start")
    return proc


# ---- load ----
def run_wrk(url: str, headers: dict[str, str], body: str | None, duration: int, conns: int) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        method = "POST" if body is not None else "GET"
        fh.write(f'wrk.method = "{method}"\n')
        if body is not None:
            fh.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers.items():
            fh.write(f'wrk.headers["{k}"] = "{v}"\n')
        script = fh.name
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m is not None, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx responses from {url}", file=sys.stderr)
    return rps, p99


async def _asyncio_load(url: str, headers: dict[str, str], body: str | None, duration: int,
                        conns: int) -> tuple[float, float]:
    import httpx

    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if body is None:
                await client.get(url, headers=headers)
            else:
                await client.post(url, headers=headers, content=body)
            latencies.append((time.perf_counter() - t0) * 1000)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=conns)) as client:
        await asyncio.gather(*(worker(client) for _ in range(conns)))
    return len(latencies) / duration, statistics.quantiles(latencies, n=100)[98]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads) so far, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, headers: dict[str, str], body: str | None, duration: int, conns: int) -> tuple[float, float]:
    if shutil.which("wrk"):
        return run_wrk(url, headers, body, duration, conns)
    return asyncio.run(_asyncio_load(url, headers, body, duration, conns))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--database-url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/DB (default SQLite)")
    args = ap.parse_args()

    import httpx

    data_dir = tempfile.mkdtemp(prefix="hc-bench-")
    node_port, hello_port = free_port(), free_port()
    node = spawn("node", data_dir, str(node_port), *([args.database_url] if args.database_url else []))
    hello = spawn("hello", str(hello_port))
    try:
        base = f"http://127.0.0.1:{node_port}"
        with httpx.Client(base_url=base) as c:
            tok = c.post("/api/v1/auth/login", json={"username": "admin", "password": "adminpass1"}).json()
            auth = {"authorization": f"Bearer {tok['data']['access_token']}"}
            key = c.post("/api/v1/api-keys", json={"name": "bench"}, headers=auth).json()["data"]["key"]
            kh = {"x-api-key": key}
            for i in range(20):
                c.post("/api/v1/streams", json={"name": f"bench-{i}", "title": f"Bench {i}"}, headers=kh)
            vid = c.post("/api/v1/videos", json={"title": "bench", "size": 1}, headers=kh).json()["data"]["id"]
        jh = {"content-type": "application/json"}
        body = json.dumps({"body": "hello from the benchmark"})
        cases = [
            ("GET  /api/v1/streams?size=20 (API key)", f"{base}/api/v1/streams?size=20", kh, None),
            ("POST /api/v1/videos/ID/comments (API key)", f"{base}/api/v1/videos/{vid}/comments", {**kh, **jh}, body),
            ("GET  hello-world (bare FastAPI)", f"http://127.0.0.1:{hello_port}/hello", {}, None),
            ("POST hello-world echo (bare FastAPI)", f"http://127.0.0.1:{hello_port}/hello", jh, body),
        ]
        tool = "wrk -t1" if shutil.which("wrk") else "asyncio httpx client"
        print(f"load: {tool}, {args.connections} connections, {args.duration} s per case, loopback; "
              f"store: {'PostgreSQL' if args.database_url else 'SQLite'}")
        results = {}
        for (name, url, headers, payload), server in zip(cases, (node, node, hello, hello), strict=True):
            load(url, headers, payload, 2, args.connections)  # warm-up
            before = cpu_seconds(server.pid)
            rps, p99 = load(url, headers, payload, args.duration, args.connections)
            after = cpu_seconds(server.pid)
            results[name] = (rps, p99)
            # CPU per request is the steadier figure on a shared machine: req/s moves with the load
            # other processes put on the cores, the server's own CPU cost per request much less.
            cpu = f"{1000 * (after - before) / (rps * args.duration):6.2f} ms CPU/req" \
                if before is not None and after is not None and rps else ""
            print(f"{name:45s} {rps:9.0f} req/s   p99 {p99:7.2f} ms   {cpu}")
        names = list(results)
        print(f"ratio GET  API/hello: {results[names[0]][0] / results[names[2]][0]:.2f}")
        print(f"ratio POST API/hello: {results[names[1]][0] / results[names[3]][0]:.2f}")
    finally:
        for proc in (node, hello):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
