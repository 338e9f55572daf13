"""Server side: WebSocket routes inside our HTTP front door.

`WebSocketServer.route(app)` gives an HTTP handler for a `/ws/...` path. It checks the upgrade
request with the sans-I/O handshake, answers `101` with `on_upgrade`, and then drives the
connection from the `RawChannel` in push mode. The server keeps the set of open connections for
the keepalive sweeper and for a clean `1001 going away` at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from hivecast.http import Request, Response
from hivecast.http.channel import RawChannel
from hivecast.ws.connection import Options, Sweeper, WebSocket
from hivecast.ws.errors import ConnectionClosed, HandshakeError
from hivecast.ws.handshake import OriginCheck, accept
from hivecast.ws.protocol import Limits, Side, WebSocketProtocol

log = logging.getLogger(__name__)

App = Callable[[WebSocket], Awaitable[None]]
# Runs before the 101: return None to go on, or a Response to refuse (e.g. 401 for a bad token).
Gate = Callable[[Request], Awaitable[Response | None]]


class WebSocketServer:
    def __init__(self, options: Options | None = None, *, sweep_tick: float = 1.0) -> None:
        self.options = options or Options()
        self.sweeper = Sweeper(sweep_tick)
        self.connections: set[WebSocket] = set()
        self.accepted = 0
        self.rejected = 0
        self.dropped_slow = 0
        self.closing = False

    def route(self, app: App, *, subprotocols: Sequence[str] = (), origin_allowed: OriginCheck | None = None,
              gate: Gate | None = None, options: Options | None = None) -> Callable[[Request], Awaitable[Response]]:
        opts = options or self.options

        async def handle(request: Request) -> Response:
            if self.closing:
                return Response.text("shutting down\n", status=503)
            try:
                accepted = accept(request.method, request.http_version, request.headers, subprotocols=subprotocols,
                                  enable_deflate=opts.enable_deflate, origin_allowed=origin_allowed)
            except HandshakeError as exc:
                self.rejected += 1
                return Response.text(f"{exc}\n", status=exc.status, headers=exc.headers)
            if gate is not None:
                refusal = await gate(request)
                if refusal is not None:
                    self.rejected += 1
                    return refusal

            async def on_upgrade(channel: RawChannel) -> None:
                # send() waits for the peer above our own high-water mark, not the HTTP one
                transport = channel.transport
                if transport is not None:
                    transport.set_write_buffer_limits(high=opts.write_high)
                proto = WebSocketProtocol(Side.SERVER, deflate=accepted.deflate, limits=Limits(
                    max_message_size=opts.max_message_size, compress_min_size=opts.compress_min_size,
                    compress_level=opts.compress_level), deliver_before_failing=True)
                ws = WebSocket(channel, proto, opts, path=request.path, query=request.query,
                               headers=request.headers, subprotocol=accepted.subprotocol, peer=request.client)
                await self.serve(ws, app)

            return Response(101, accepted.headers, on_upgrade=on_upgrade)

        return handle

    async def serve(self, ws: WebSocket, app: App) -> None:
        self.accepted += 1
        self.connections.add(ws)
        if ws.options.ping_interval is not None or ws.options.idle_timeout is not None:
            self.sweeper.add(ws)
        ws.start()
        try:
            await app(ws)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.channel.abort()
            raise
        except Exception:
            log.exception("websocket handler for %s failed", ws.path)
            with contextlib.suppress(Exception):
                await ws.close(1011, "internal error")
        finally:
            with contextlib.suppress(Exception):
                await ws.close(1000)
            if ws.dropped_slow:
                self.dropped_slow += 1
            self.connections.discard(ws)
            self.sweeper.discard(ws)

    async def close(self, code: int = 1001, reason: str = "server shutting down", grace: float = 1.0) -> None:
        """Start the closing handshake on every connection and wait for them, at most `grace` seconds."""
        self.closing = True
        for ws in list(self.connections):
            if ws.open:
                ws.protocol.send_close(code, reason)
                ws._write(ws.protocol.data_to_send())
        waits = [asyncio.ensure_future(ws.wait_closed()) for ws in list(self.connections)]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for t in pending:
                t.cancel()
            for ws in list(self.connections):
                ws.channel.abort()
        await self.sweeper.stop()


async def echo(ws: WebSocket) -> None:
    """Send every message back as it came (text as text, binary as binary): conformance and benchmarks."""
    async for message in ws:
        await ws.send(message)
