"""Client side: `await connect("ws://127.0.0.1:8080/ws/echo")` gives an open `WebSocket`.

The socket is an asyncio protocol of our own so that, once the handshake is read, bytes are pushed
into the sans-I/O core exactly as on the server (the same `RawChannel`, the same `WebSocket`).
Keepalive pings run on one small task per client connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
import time
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

from hivecast.http.channel import RawChannel
from hivecast.net.errors import translate_os_error
from hivecast.ws.connection import Options, WebSocket
from hivecast.ws.errors import HandshakeError
from hivecast.ws.handshake import ClientHandshake, ResponseHead, parse_response_head
from hivecast.ws.protocol import Limits, Side, WebSocketProtocol


class _ClientSocket(asyncio.Protocol):
    """Collects the response head, then becomes the owner of a `RawChannel` (push mode)."""

    def __init__(self, options: Options, write_buffer_max: int, write_timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("?", 0)
        self.write_buffer_max = write_buffer_max
        self.write_timeout = write_timeout
        self._head = bytearray()
        self._head_ready: asyncio.Future[tuple[ResponseHead, bytes]] | None = None
        self.channel: RawChannel | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._head_ready = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.data_received(data)
            return
        self._head += data
        fut = self._head_ready
        if fut is None or fut.done():
            return
        try:
            parsed = parse_response_head(bytes(self._head))
        except HandshakeError as exc:
            fut.set_exception(exc)
            return
        if parsed is not None:
            head, used = parsed
            fut.set_result((head, bytes(self._head[used:])))

    def eof_received(self) -> bool | None:
        if self.channel is not None:
            self.channel.eof_received()
            # Keep the socket half-open to send our close frame; TLS cannot half-close (asyncio
            # warns and closes anyway), so there the answer is "close".
            tls = self.transport is not None and self.transport.get_extra_info("sslcontext") is not None
            return None if tls else True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        if self.channel is not None:
            self.channel.eof_received()
        fut = self._head_ready
        if fut is not None and not fut.done():
            fut.set_exception(HandshakeError("connection closed during the handshake", 502))

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def wait_writable(self) -> None:
        await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("connection closed")

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None and not self._closed:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self._closed:
            self._paused = False
            self.transport.resume_reading()


async def connect(url: str, *, options: Options | None = None, origin: str | None = None,
                  subprotocols: Sequence[str] = (), headers: Sequence[tuple[str, str]] = (),
                  open_timeout: float = 10.0, client_no_context_takeover: bool = False,
                  write_buffer_max: int | None = None, ssl: ssl_module.SSLContext | None = None,
                  server_hostname: str | None = None) -> WebSocket:
    """Open a client connection to a ws:// or wss:// URL.

    wss:// uses `ssl` (default: the system's trust store with hostname checking) and sends SNI and
    checks the certificate for `server_hostname` (default: the URL's host). `open_timeout` bounds
    the TCP connect, the TLS handshake and the WebSocket handshake together.
    """
    opts = options or Options()
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"only ws:// and wss:// URLs are supported, not {url!r}")
    secure = parts.scheme == "wss"
    if ssl is not None and not secure:
        raise ValueError(f"an ssl context was given for a plain ws:// URL: {url!r}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host  # RFC 3986: an IPv6 literal keeps its brackets
    if parts.port:
        host_header += f":{port}"
    tls_context = (ssl or ssl_module.create_default_context()) if secure else None
    sni = (server_hostname or host) if secure else None
    hs = ClientHandshake(host_header, resource, origin=origin,
                         subprotocols=subprotocols, enable_deflate=opts.enable_deflate,
                         client_no_context_takeover=client_no_context_takeover, extra_headers=headers)
    loop = asyncio.get_running_loop()
    sock_proto = _ClientSocket(opts, write_buffer_max or max(opts.write_limit * 2, 1 << 20), opts.close_timeout * 6)
    try:
        async with asyncio.timeout(open_timeout):
            try:
                transport, _ = await loop.create_connection(lambda: sock_proto, host, port, ssl=tls_context,
                                                            server_hostname=sni)
            except ssl_module.SSLError as exc:
                raise HandshakeError(f"TLS handshake with {host}:{port} failed: {exc}", 502) from None
            except OSError as exc:
                raise translate_os_error(exc, (host, port), action="websocket connect") from None
            try:
                transport.write(hs.request_bytes())
                assert sock_proto._head_ready is not None
                head, rest = await sock_proto._head_ready
                deflate, sub = hs.check(head)
            except BaseException:
                transport.abort()
                raise
    except TimeoutError:
        raise HandshakeError(f"no handshake answer from {host}:{port} within {open_timeout}s", 504) from None
    transport.set_write_buffer_limits(high=opts.write_high)
    channel = RawChannel(sock_proto, rest, read_limit=1 << 20)
    sock_proto.channel = channel
    proto = WebSocketProtocol(Side.CLIENT, deflate=deflate, limits=Limits(
        max_message_size=opts.max_message_size, compress_min_size=opts.compress_min_size,
                    compress_level=opts.compress_level), deliver_before_failing=True)
    ws = WebSocket(channel, proto, opts, path=parts.path or "/", headers=head, subprotocol=sub, peer=sock_proto.peer)
    ws.start()
    if opts.ping_interval is not None or opts.idle_timeout is not None:
        task = loop.create_task(_client_timers(ws), name="ws-client-timers")
        ws.state["_timers"] = task
    return ws


async def _client_timers(ws: WebSocket) -> None:
    while not ws.closed:
        await asyncio.sleep(1.0)
        ws.check_timers(time.monotonic())
