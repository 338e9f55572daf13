"""RTMP fan-out: the largest number of readers that all keep up, our server against nginx-rtmp.

One run, same machine, loopback only:
  1. pre-encodes a clip (1280x720 30 fps H.264 at about 4 Mbit/s + AAC) once, into /tmp;
  2. starts `hivecast serve --rtmp-port P` and nginx with the RTMP module (one worker), each pinned
     to CPU 0 with taskset;
  3. ffmpeg loops the clip with `-re -stream_loop -1 -c copy` into each server;
  4. one asyncio reader swarm of ours (this process, pinned to CPU 1) opens N RTMP players per step
     (handshake, connect, createStream, play with our sans-I/O client), then only counts bytes and
     sends an Acknowledgement every 1 MB (nginx-rtmp stops sending to a reader that never acknowledges;
     without acks its readers all stall at a few hundred), with SO_RCVLOWAT set to about 300 ms of
     stream so each reader wakes a few times a second;
  5. a step passes when at least 98% of the readers receive at least 90% of the publisher's bitrate
     over the measuring window. The figure is the largest N that passes, and ours / nginx's.

    .venv/bin/python bench/rtmp_fanout.py --steps 200,400,800,1200,1600,2000,2400,3000,3600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hivecast.rtmp.chunk import ACK, encode_message
from hivecast.rtmp.handshake import ClientHandshake
from hivecast.rtmp.session import ClientSession, StatusReceived, StreamCreated

CLIP = Path(tempfile.gettempdir()) / "hivecast-bench-4mbit.flv"
NGINX_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
ACK_EVERY = 1_000_000  # bytes; below the 2.5-5 MB windows servers announce


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_clip() -> None:
    if CLIP.exists():
        return
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3800k", "-maxrate", "4000k",
                    "-bufsize", "4000k", "-g", "60", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(CLIP)], check=True)


def taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


class Reader(asyncio.Protocol):
    """One player: handshake and commands through the sans-I/O client, then it only counts bytes."""

    def __init__(self, name: str, app: str, tc_url: str, lowat: int) -> None:
        self.name, self.app, self.tc_url, self.lowat = name, app, tc_url, lowat
        self.hs = ClientHandshake()
        self.session = ClientSession()
        self.transport: asyncio.Transport | None = None
        self.playing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes = 0
        self.acked = 0
        self.closed = False
        self.step = "handshake"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass
        transport.write(self.hs.start())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.step == "count":
            self.bytes += len(data)
            # Acknowledge like a real player (without parsing): servers may hold back unacknowledged data.
            if self.bytes - self.acked >= ACK_EVERY and self.transport is not None:
                self.acked = self.bytes
                self.transport.write(encode_message(2, ACK, 0, 0, struct.pack(">I", self.bytes & 0xFFFFFFFF), 4096))
            return
        assert self.transport is not None
        try:
            if self.step == "handshake":
                c2 = self.hs.receive_data(data)
                if not self.hs.done:
                    return
                self.transport.write(c2)
                self.session.connect(self.app, self.tc_url)
                self.step = "connect"
                data = self.hs.leftover
            for ev in self.session.receive_data(data):
                if self.step == "connect" and type(ev).__name__ == "Connected":
                    self.session.create_stream()
                    self.step = "create"
                elif isinstance(ev, StreamCreated):
                    self.session.play(self.name)
                    self.step = "play"
                elif isinstance(ev, StatusReceived) and ev.code == "NetStream.Play.Start":
                    self.step = "count"
                    sock = self.transport.get_extra_info("socket")
                    if sock is not None and hasattr(socket, "SO_RCVLOWAT"):
                        with contextlib.suppress(OSError):
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self.lowat)
                    if not self.playing.done():
                        self.playing.set_result(None)
            out = self.session.data_to_send()
            if out:
                self.transport.write(out)
        except Exception as exc:
            if not self.playing.done():
                self.playing.set_exception(exc)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.playing.done():
            self.playing.set_exception(ConnectionError("closed before play"))


async def open_readers(port: int, n: int, lowat: int) -> list[Reader]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(64)
    readers: list[Reader] = []

    async def one() -> None:
        async with sem:
            r = Reader("bench", "live", f"rtmp://127.0.0.1:{port}/live", lowat)
            await loop.create_connection(lambda: r, "127.0.0.1", port)
            readers.append(r)
            await asyncio.wait_for(r.playing, 30)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    failed = sum(1 for x in results if isinstance(x, BaseException))
    if failed:
        print(f"    {failed} of {n} readers failed to start", flush=True)
    return readers


async def measure(readers: list[Reader], seconds: float) -> list[float]:
    start = {id(r): r.bytes for r in readers}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return [(r.bytes - start[id(r)]) * 8 / dt for r in readers if not r.closed]


async def run_steps(label: str, port: int, steps: list[int], bitrate: float, warmup: float, window: float) -> int:
    best = 0
    lowat = max(4096, int(bitrate / 8 * 0.3))
    for n in steps:
        readers = await open_readers(port, n, lowat)
        await asyncio.sleep(warmup)
        rates = await measure(readers, window)
        ok = sum(1 for r in rates if r >= 0.9 * bitrate)
        passed = ok >= 0.98 * n
        mean = sum(rates) / len(rates) / 1e6 if rates else 0.0
        print(f"  {label}: N={n:5d} keeping up {ok:5d}/{n} mean {mean:.2f} Mbit/s -> {'pass' if passed else 'FAIL'}",
              flush=True)
        for r in readers:
            if r.transport is not None:
                r.transport.abort()
        await asyncio.sleep(2.0)
        if not passed:
            break
        best = n
    return best


async def publisher_bitrate(port: int) -> float:
    """The stream's bitrate as one reader sees it over a few seconds (the reference for keeping up)."""
    readers = await open_readers(port, 1, 4096)
    await asyncio.sleep(2)
    rates = await measure(readers, 6)
    for r in readers:
        if r.transport is not None:
            r.transport.abort()
    return rates[0] if rates else 0.0


async def wait_port(port: int, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.2)


async def bench_server(label: str, server_cmd: list[str], port: int, steps: list[int], args: argparse.Namespace,
                       workdir: Path) -> int:
    dn = asyncio.subprocess.DEVNULL
    server = await asyncio.create_subprocess_exec(*taskset(0), *server_cmd, stdout=dn, stderr=dn)
    pub = None
    try:
        await wait_port(port)
        pub = await asyncio.create_subprocess_exec(
            *taskset(1), ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(CLIP),
            "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/bench", stdout=dn, stderr=dn)
        await asyncio.sleep(3)
        bitrate = await publisher_bitrate(port)
        print(f"{label}: stream bitrate {bitrate / 1e6:.2f} Mbit/s", flush=True)
        return await run_steps(label, port, steps, bitrate, args.warmup, args.window)
    finally:
        for p in (pub, server):
            if p is not None and p.returncode is None:
                p.terminate()
                try:
                    await asyncio.wait_for(p.wait(), 10)
                except TimeoutError:
                    p.kill()
                    await p.wait()


def nginx_setup(workdir: Path) -> tuple[int, Path] | None:
    if not (shutil.which("nginx") and os.path.exists(NGINX_MODULE)):
        return None
    port = free_port()
    nd = workdir / "nginx"
    (nd / "logs").mkdir(parents=True)
    conf = nd / "nginx.conf"
    conf.write_text(
        f"load_module {NGINX_MODULE};\nworker_processes 1;\ndaemon off;\npid {nd}/nginx.pid;\n"
        f"error_log {nd}/error.log warn;\nworker_rlimit_nofile 20000;\n"
        f"events {{ worker_connections 16384; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        f"  application live {{ live on; record off; }} }} }}\n")
    return port, conf


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="100,200,400,800,1200,1600,2000,2400,3000,3600,4200")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=6.0)
    ap.add_argument("--only", choices=["hivecast", "nginx"])
    args = ap.parse_args()
    steps = [int(x) for x in args.steps.split(",")]
    make_clip()
    workdir = Path(tempfile.mkdtemp(prefix="hivecast-rtmp-bench-"))
    results: dict[str, int] = {}
    if args.only in (None, "hivecast"):
        port, http = free_port(), free_port()
        cmd = [sys.executable, "-m", "hivecast", "serve", "--host", "127.0.0.1", "--http-port", str(http),
               "--rtsp-port", str(free_port()), "--rtmp-port", str(port), "--open-publish", "--log-level", "warning",
               "--data-dir", str(workdir / "data")]
        results["hivecast"] = await bench_server("hivecast", cmd, port, steps, args, workdir)
    if args.only in (None, "nginx"):
        nginx = nginx_setup(workdir)
        if nginx is None:
            print("nginx with the RTMP module is not installed: skipping it")
        else:
            port, conf = nginx
            nd = conf.parent
            results["nginx"] = await bench_server("nginx-rtmp", ["nginx", "-c", str(conf), "-p", str(nd)], port,
                                                  steps, args, workdir)
    print("\nlargest N with every reader keeping up:", results)
    if results.get("nginx"):
        print(f"ratio hivecast / nginx-rtmp: {results.get('hivecast', 0) / results['nginx']:.2f}")
    return 0


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    raise SystemExit(asyncio.run(main()))
