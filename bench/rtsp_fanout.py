"""RTSP fan-out: one ~4 Mbit/s publisher, N UDP readers; largest N under 0.1% loss, ours vs gst-rtsp-server.

    .venv/bin/python bench/rtsp_fanout.py [--ladder 50,100,200,300,400] [--seconds 8]

Each server runs pinned to core 0 (`taskset`); the publisher (ffmpeg looping a pre-encoded clip with
`-c copy`) and the reader swarm (one asyncio process of our own) share core 1. For each N a fresh
swarm opens N sessions (DESCRIBE, SETUP both tracks over UDP, PLAY), warms up, then counts RTP
packets and sequence gaps per reader over the window. A step passes with loss < 0.1% and every
reader receiving at least 95% of the stream's bitrate. Not run by CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GST_SERVER = ROOT / "tests" / "interop" / "peers" / "gst_rtsp_server.py"


# --- the reader swarm (runs in its own process) -------------------------------------------------
class UdpReader:
    """Counts RTP packets and sequence gaps for one track of one reader, draining its socket in batches."""

    __slots__ = ("bytes", "highest", "received", "sock")

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.received = 0
        self.bytes = 0
        self.highest: int | None = None  # extended sequence number

    def drain(self) -> None:
        recv = self.sock.recv
        while True:
            try:
                data = recv(2048)
            except BlockingIOError:
                return
            if len(data) < 12:
                continue
            seq = (data[2] << 8) | data[3]
            self.received += 1
            self.bytes += len(data)
            h = self.highest
            if h is None:
                self.highest = seq
            else:
                delta = (seq - h) & 0xFFFF
                if delta < 0x8000:
                    self.highest = h + delta


async def rtsp_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lines: list[str]) -> tuple[int, dict[str, str], bytes]:
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    text = head.decode(errors="replace").split("\r\n")
    status = int(text[0].split()[1])
    headers = {}
    for ln in text[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if int(headers.get("content-length", "0")):
        body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def open_reader(url: str, rtcp_sinks: list[socket.socket]) -> tuple[list[UdpReader], asyncio.StreamWriter]:
    host_port = url.split("/")[2]
    host, port = host_port.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    status, headers, body = await rtsp_request(reader, writer, [f"DESCRIBE {url} RTSP/1.0", "CSeq: 1",
                                                                "Accept: application/sdp"])
    if status != 200:
        raise RuntimeError(f"DESCRIBE {status}")
    base = headers.get("content-base", url + "/")
    controls = [ln.split(":", 1)[1].strip() for ln in body.decode().splitlines() if ln.startswith("a=control:")
                and ln.strip() != "a=control:*"]
    tracks: list[UdpReader] = []
    session = None
    for i, control in enumerate(controls):
        track = UdpReader()
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp.bind(("127.0.0.1", 0))
        rtcp_sinks.append(rtcp)
        rtp_port = track.sock.getsockname()[1]
        # Client ports need not be adjacent for either server; they are told both.
        lines = [f"SETUP {control if '://' in control else base.rstrip('/') + '/' + control} RTSP/1.0",
                 f"CSeq: {2 + i}", f"Transport: RTP/AVP;unicast;client_port={rtp_port}-{rtcp.getsockname()[1]}"]
        if session:
            lines.append(f"Session: {session}")
        status, headers, _ = await rtsp_request(reader, writer, lines)
        if status != 200:
            raise RuntimeError(f"SETUP {status}")
        session = headers["session"].split(";")[0]
        tracks.append(track)
    status, _, _ = await rtsp_request(reader, writer, [f"PLAY {url} RTSP/1.0", "CSeq: 9", f"Session: {session}",
                                                       "Range: npt=0.000-"])
    if status != 200:
        raise RuntimeError(f"PLAY {status}")
    return tracks, writer


async def swarm(url: str, readers: int, warmup: float, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rtcp_sinks: list[socket.socket] = []
    all_tracks: list[list[UdpReader]] = []
    writers: list[asyncio.StreamWriter] = []
    failures = 0
    sem = asyncio.Semaphore(32)

    async def one() -> None:
        nonlocal failures
        async with sem:
            try:
                tracks, writer = await asyncio.wait_for(open_reader(url, rtcp_sinks), 20)
            except Exception:
                failures += 1
                return
        for t in tracks:
            loop.add_reader(t.sock.fileno(), t.drain)
        all_tracks.append(tracks)
        writers.append(writer)

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(readers)))
    setup_s = time.monotonic() - t0
    await asyncio.sleep(warmup)

    def snapshot() -> list[tuple[int, int, int]]:
        out = []
        for tracks in all_tracks:
            for t in tracks:
                out.append((t.received, t.highest if t.highest is not None else -1, t.bytes))
        return out

    cpu0 = time.process_time()
    before = snapshot()
    await asyncio.sleep(seconds)
    after = snapshot()
    cpu = (time.process_time() - cpu0) / seconds
    expected = received = 0
    per_reader_bytes: list[int] = []
    idx = 0
    for tracks in all_tracks:
        total = 0
        for _ in tracks:
            (r0, h0, b0), (r1, h1, b1) = before[idx], after[idx]
            idx += 1
            if h0 < 0:
                expected += max(0, h1 + 1) if h1 >= 0 else 0
                received += r1 - r0
            else:
                expected += h1 - h0
                received += r1 - r0
            total += b1 - b0
        per_reader_bytes.append(total)
    for w in writers:
        w.close()
    for tracks in all_tracks:
        for t in tracks:
            loop.remove_reader(t.sock.fileno())
            t.sock.close()
    for s in rtcp_sinks:
        s.close()
    lost = max(0, expected - received)
    rates = sorted(b * 8 / seconds for b in per_reader_bytes)
    return {
        "readers": readers, "connected": len(all_tracks), "failures": failures, "setup_s": round(setup_s, 2),
        "expected": expected, "received": received, "loss": lost / expected if expected else 1.0,
        "min_bps": rates[0] if rates else 0, "median_bps": rates[len(rates) // 2] if rates else 0,
        "swarm_cpu": round(cpu, 2),
    }


def swarm_main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(swarm(args.url, args.readers, args.warmup, args.seconds))
    print(json.dumps(result), flush=True)


# --- the driver -----------------------------------------------------------------------------
def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_clip(ffmpeg: str, path: Path) -> None:
    """One encode in Matroska (global headers, as the RTSP muxer needs) and the same bytes remuxed to TS."""
    if path.exists():
        return
    mkv = path.with_suffix(".mkv")
    subprocess.run([ffmpeg, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=20",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20",
                    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "3900k", "-maxrate", "4000k",
                    "-bufsize", "2000k", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                    str(mkv)], check=True)
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", str(mkv), "-c", "copy", "-f", "mpegts", str(path)], check=True)


def spawn(cmd: list[str], core: int | None, **kw: Any) -> subprocess.Popen[bytes]:
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kw)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_port(port: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} never opened")


def run_swarm(url: str, n: int, seconds: float, warmup: float) -> dict[str, Any]:
    out = subprocess.run(["taskset", "-c", "1", sys.executable, __file__, "swarm", "--url", url, "--readers", str(n),
                          "--seconds", str(seconds), "--warmup", str(warmup)],
                         capture_output=True, text=True, timeout=seconds + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def anchor(ffmpeg: str, url: str) -> subprocess.Popen[bytes]:
    """One reader held for the whole run (not counted), so the shared media is never torn down and
    prepared again between steps: gst-rtsp-server 1.22 can hang when a crowd joins during that."""
    return spawn([ffmpeg, "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-map", "0", "-c", "copy", "-f", "null", "-"],
                 1, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def step(name: str, url: str, n: int, seconds: float, warmup: float, stream_bps: float,
         server: subprocess.Popen[bytes]) -> bool:
    cpu0 = server_cpu(server.pid)
    t0 = time.monotonic()
    result = run_swarm(url, n, seconds, warmup)
    server_load = (server_cpu(server.pid) - cpu0) / (time.monotonic() - t0)
    ok = bool(result["connected"] == n and result["loss"] < 0.001 and result["min_bps"] >= 0.95 * stream_bps)
    print(f"{name:>5} N={n:<5} loss={result['loss'] * 100:.3f}% min={result['min_bps'] / 1e6:.2f} Mbit/s "
          f"median={result['median_bps'] / 1e6:.2f} connected={result['connected']} server_cpu~{server_load:.2f} "
          f"swarm_cpu={result['swarm_cpu']} {'ok' if ok else 'FAIL'}", flush=True)
    return ok


def server_cpu(pid: int) -> float:
    """CPU seconds used by a process tree root and its children (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (p / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == os.getpgid(pid) or int(p.name) == pid:  # same process group
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    sw = sub.add_parser("swarm")
    sw.add_argument("--url", required=True)
    sw.add_argument("--readers", type=int, required=True)
    sw.add_argument("--seconds", type=float, default=8)
    sw.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--ladder", default="50,100,200,300,400,600")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--only", choices=["ours", "gst"])
    args = parser.parse_args()
    if args.cmd == "swarm":
        swarm_main(args)
        return
    ladder = [int(x) for x in args.ladder.split(",")]
    ffmpeg = ffmpeg_exe()
    work = Path(tempfile.mkdtemp(prefix="rtsp-bench-"))
    clip = work / "clip.ts"
    make_clip(ffmpeg, clip)
    size = clip.stat().st_size
    stream_bps = size * 8 / 20.0
    print(f"clip: {stream_bps / 1e6:.2f} Mbit/s (H.264 720p30 + AAC), window {args.seconds}s, ladder {ladder}", flush=True)
    results: dict[str, int] = {}
    procs: list[subprocess.Popen[bytes]] = []
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        if args.only in (None, "ours"):
            port = free_port()
            hivecast = [str(ROOT / ".venv" / "bin" / "hivecast"), "serve", "--host", "127.0.0.1", "--http-port", "0",
                        "--rtsp-port", str(port), "--open-publish", "--data-dir", str(work / "data"),
                        "--log-level", "warning"]
            server = spawn(hivecast, 0)
            procs.append(server)
            wait_port(port)
            url = f"rtsp://127.0.0.1:{port}/bench"
            procs.append(spawn([ffmpeg, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip.with_suffix(".mkv")),
                                "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url], 1))
            servers["ours"] = (url, server)
        if args.only in (None, "gst"):
            port, ts_port = free_port(), free_port(socket.SOCK_DGRAM)
            server = spawn(["/usr/bin/python3", str(GST_SERVER), str(port), "/bench", str(ts_port)], 0,
                           stdout=subprocess.DEVNULL)
            procs.append(server)
            wait_port(port)
            procs.append(spawn([ffmpeg, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
                                "-f", "mpegts", f"udp://127.0.0.1:{ts_port}?pkt_size=1316"], 1))
            servers["gst"] = (f"rtsp://127.0.0.1:{port}/bench", server)
        time.sleep(3)
        for url, _ in servers.values():
            procs.append(anchor(ffmpeg, url))
        time.sleep(3)
        # Interleave the servers at each N so both meet the same background load.
        alive = dict(servers)
        for n in ladder:
            for name, (url, server) in list(alive.items()):
                if step(name, url, n, args.seconds, args.warmup, stream_bps * 0.97, server):
                    results[name] = n
                else:
                    del alive[name]
            if not alive:
                break
    finally:
        for proc in reversed(procs):
            stop(proc)
    print(json.dumps(results))
    if results.get("gst"):
        print(f"largest N under 0.1% loss on one core: ours {results.get('ours')} / gst-rtsp-server "
              f"{results['gst']} = {results.get('ours', 0) / results['gst']:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
