"""WebSocket servers compared in one run on loopback: ours against `websockets`, `picows` and `aiohttp`.

    .venv/bin/python bench/ws_bench.py [--duration 5] [--conns 16] [--receivers 5000] [--rounds 3]

Each server runs in its own process (pinned to CPU 0 when the machine has two or more), with
uvloop, compression off. One load process (pinned to CPU 1) measures, with the same minimal client
for every server (precomputed masked frames, our frame parser for replies):
  - echo round trips per second for 32-byte and 64 KiB binary messages, `--conns` connections each
    keeping one message in flight;
  - broadcast: `--receivers` connected clients, one control connection asks the server to send one
    64-byte text message to all of them; the time until the last receiver has it (median of 5).
All servers run at once; rounds interleave them and each keeps its best figure. It prints a
table, the ratios of ours against each peer on those best figures, and the median (and range) of
the ratios within each round, which a quiet moment for one server alone moves less.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from hivecast.ws.frames import FrameParser, encode_frame

SERVERS = ("hivecast", "websockets", "picows", "aiohttp")
BROADCAST_PAYLOAD = "b" * 64


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(cpu: int) -> None:
    if (os.cpu_count() or 1) >= 2:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {cpu})


# ---------------------------------------------------------------- servers (one per process)

async def serve_hivecast(port: int) -> None:
    from hivecast.http import HttpServer, Router
    from hivecast.http.server import HttpLimits
    from hivecast.ws import Options, WebSocket, WebSocketServer, broadcast, echo

    opts = Options(ping_interval=None, max_message_size=1 << 24, enable_deflate=False)
    wss = WebSocketServer(opts)
    members: set[WebSocket] = set()

    async def bcast(ws: WebSocket) -> None:
        members.add(ws)
        try:
            async for msg in ws:
                if msg == "go":
                    broadcast(members, BROADCAST_PAYLOAD)
        finally:
            members.discard(ws)

    router = Router()
    router.exact("/echo", wss.route(echo))
    router.exact("/bcast", wss.route(bcast))
    server = HttpServer(router, host="127.0.0.1", port=port, limits=HttpLimits(max_connections=100_000))
    await server.start()
    await asyncio.Event().wait()


async def serve_websockets(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    members: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/bcast":
            members.add(ws)
            try:
                async for msg in ws:
                    if msg == "go":
                        broadcast(members, BROADCAST_PAYLOAD)
            finally:
                members.discard(ws)
            return
        async for msg in ws:
            await ws.send(msg)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None, ping_interval=None,
                     backlog=4096):
        await asyncio.Event().wait()


async def serve_picows(port: int) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

    members: set[WSTransport] = set()
    payload = BROADCAST_PAYLOAD.encode()

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    class Bcast(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            members.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            members.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"go":
                for t in members:
                    t.send(WSMsgType.TEXT, payload)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def factory(request: WSUpgradeRequest) -> WSListener:
        return Bcast() if request.path == b"/bcast" or request.path == "/bcast" else Echo()

    server = await ws_create_server(factory, "127.0.0.1", port, max_frame_size=1 << 24, backlog=4096)
    async with server:
        await asyncio.Event().wait()


async def serve_aiohttp(port: int) -> None:
    from aiohttp import WSMsgType, web

    members: set[web.WebSocketResponse] = set()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def bcast(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        members.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "go":
                    for m in list(members):
                        await m.send_str(BROADCAST_PAYLOAD)
        finally:
            members.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/bcast", bcast)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    await asyncio.Event().wait()


SERVE: dict[str, Callable[[int], Any]] = {"hivecast": serve_hivecast, "websockets": serve_websockets,
                                          "picows": serve_picows, "aiohttp": serve_aiohttp}


# ---------------------------------------------------------------- the load client

class RawClient(asyncio.Protocol):
    """Handshake by hand, then replies parsed by our frame parser; the same cost for every server."""

    def __init__(self, path: str, on_frame: Callable[[RawClient, bytes], None] | None = None,
                 on_bytes: Callable[[RawClient, int], None] | None = None) -> None:
        self.path = path
        self.on_frame = on_frame
        self.on_bytes = on_bytes
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head = b""
        self.parser = FrameParser(expect_masked=False, max_frame_size=1 << 26)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"  # type: ignore[attr-defined]
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        .encode())

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(self._head[:60].decode(errors="replace")))
                return
            data = self._head[end + 4:]
            self.ready.set_result(None)
            if not data:
                return
        if self.on_bytes is not None:
            self.on_bytes(self, len(data))
            return
        self.parser.feed(data)
        while (f := self.parser.next_frame()) is not None:
            if self.on_frame is not None:
                self.on_frame(self, f.data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("lost during handshake"))


async def open_clients(port: int, path: str, n: int, batch: int = 100, **kw: Any) -> list[RawClient]:
    loop = asyncio.get_running_loop()
    out: list[RawClient] = []

    async def one() -> RawClient:
        _, proto = await loop.create_connection(lambda: RawClient(path, **kw), "127.0.0.1", port)
        await proto.ready
        return proto

    for i in range(0, n, batch):
        out.extend(await asyncio.gather(*(one() for _ in range(min(batch, n - i)))))
    return out


async def echo_rate(port: int, size: int, conns: int, duration: float) -> float:
    frame = encode_frame(2, os.urandom(size), mask=os.urandom(4))
    count = 0
    stop = False

    def on_frame(client: RawClient, data: bytes) -> None:
        nonlocal count
        count += 1
        if not stop:
            assert client.transport is not None
            client.transport.write(frame)

    clients = await open_clients(port, "/echo", conns, on_frame=on_frame)
    for c in clients:  # warm-up happens inside the window: it is short against the duration
        assert c.transport is not None
        c.transport.write(frame)
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    n, elapsed = count, time.perf_counter() - t0
    stop = True
    await asyncio.sleep(0.2)
    for c in clients:
        if c.transport is not None:
            c.transport.abort()
    return n / elapsed


async def broadcast_time(port: int, receivers: int, rounds: int = 5) -> float:
    frame_len = 2 + len(BROADCAST_PAYLOAD)
    got: dict[RawClient, int] = {}
    pending = 0
    done: asyncio.Future[None] | None = None

    def on_bytes(client: RawClient, n: int) -> None:
        nonlocal pending
        before = got.get(client, 0)
        got[client] = before + n
        target = current_round * frame_len
        if before < target <= before + n:
            pending -= 1
            if pending == 0 and done is not None and not done.done():
                done.set_result(None)

    current_round = 0
    clients = await open_clients(port, "/bcast", receivers, on_bytes=on_bytes)
    control = (await open_clients(port, "/bcast", 1, on_frame=lambda c, d: None))[0]
    go = encode_frame(1, b"go", mask=os.urandom(4))
    times = []
    await asyncio.sleep(0.5)
    for i in range(rounds):
        current_round = i + 1
        pending = len(clients)
        done = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        assert control.transport is not None
        control.transport.write(go)
        async with asyncio.timeout(60):
            await done
        times.append(time.perf_counter() - t0)
        await asyncio.sleep(0.2)
    for c in (*clients, control):
        if c.transport is not None:
            c.transport.abort()
    return statistics.median(times)


def wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--receivers", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    raise_fd_limit()
    import uvloop

    if args.serve:
        import logging

        logging.disable(logging.CRITICAL)  # the load client aborts its connections: no tracebacks for that
        pin(0)
        uvloop.run(SERVE[args.serve](args.port))
        return
    pin(1)
    names = args.servers.split(",")
    procs: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    results: dict[str, dict[str, float]] = {}
    per_round: dict[str, list[dict[str, float]]] = {}
    try:
        for name in names:
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", name, "--port", str(port)])
            procs[name] = (port, proc)
            wait_port(port, proc)

        async def measure(port: int) -> dict[str, float]:
            return {
                "echo_32": await echo_rate(port, 32, args.conns, args.duration),
                "echo_64k": await echo_rate(port, 64 * 1024, args.conns, args.duration),
                "bcast": await broadcast_time(port, args.receivers),
            }

        # Rounds interleave the servers, and each keeps its best figure, so that load from other
        # processes on a shared machine drifts over all of them alike.
        for rnd in range(args.rounds):
            for name in names:
                r = uvloop.run(measure(procs[name][0]))
                print(f"round {rnd + 1} {name:>10}: echo 32 B {r['echo_32']:>8.0f} rt/s   echo 64 KiB "
                      f"{r['echo_64k']:>7.0f} rt/s   broadcast to {args.receivers}: {r['bcast'] * 1000:>7.1f} ms",
                      flush=True)
                per_round.setdefault(name, []).append(dict(r))
                best = results.setdefault(name, r)
                best["echo_32"] = max(best["echo_32"], r["echo_32"])
                best["echo_64k"] = max(best["echo_64k"], r["echo_64k"])
                best["bcast"] = min(best["bcast"], r["bcast"])
    finally:
        for _, proc in procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    print(f"\nbest of {args.rounds} rounds ({args.conns} echo connections, {args.duration:g} s each):")
    for name, r in results.items():
        print(f"{name:>10}: echo 32 B {r['echo_32']:>8.0f} rt/s   echo 64 KiB {r['echo_64k']:>7.0f} rt/s   "
              f"broadcast to {args.receivers}: {r['bcast'] * 1000:>7.1f} ms")
    ours = results.get("hivecast")
    if ours:
        print("\nratios (hivecast / peer; for broadcast, peer time / hivecast time, so >1 means we are faster):")
        for name, r in results.items():
            if name == "hivecast":
                continue
            print(f"  vs {name:>10}: echo 32 B x{ours['echo_32'] / r['echo_32']:.2f}   "
                  f"echo 64 KiB x{ours['echo_64k'] / r['echo_64k']:.2f}   broadcast x{r['bcast'] / ours['bcast']:.2f}")
        # A best figure can come from a quiet moment one server had and another did not; the ratio
        # within each round (servers measured back to back) is steadier on a shared machine.
        print("\nmedian of the ratios within each round (min-max), ours and the peer measured in the same round:")
        for name, rounds in per_round.items():
            if name == "hivecast":
                continue
            pairs = list(zip(per_round["hivecast"], rounds, strict=False))
            e32 = [a["echo_32"] / b["echo_32"] for a, b in pairs]
            e64 = [a["echo_64k"] / b["echo_64k"] for a, b in pairs]
            bc = [b["bcast"] / a["bcast"] for a, b in pairs]
            print(f"  vs {name:>10}: echo 32 B x{statistics.median(e32):.2f} ({_span(e32)})   "
                  f"echo 64 KiB x{statistics.median(e64):.2f} ({_span(e64)})   "
                  f"broadcast x{statistics.median(bc):.2f} ({_span(bc)})")


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


if __name__ == "__main__":
    main()
