"""UDP endpoints: a bounded receive queue (drop and count when full), large socket buffers, typed errors."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable

from hivecast.net.errors import NetTimeout, translate_os_error

Datagram = tuple[bytes, tuple[str, int]]
DatagramHandler = Callable[[bytes, tuple[str, int]], None]


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: UdpEndpoint) -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._endpoint._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: counted, never fatal for a UDP server.
        self._endpoint.errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._endpoint._closed.set()


class UdpEndpoint:
    """A bound UDP socket. Either give on_datagram (hot path, called in the loop) or await recv()."""

    def __init__(self, *, max_queue: int, on_datagram: DatagramHandler | None) -> None:
        self._queue: collections.deque[Datagram] = collections.deque()
        self._max_queue = max_queue
        self._on_datagram = on_datagram
        self._waiter: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0
        self.errors = 0
        self.received = 0

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        if self._on_datagram is not None:
            self._on_datagram(data, addr)
            return
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append((data, addr))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def local_address(self) -> tuple[str, int]:
        assert self.transport is not None
        addr = self.transport.get_extra_info("sockname")
        return (str(addr[0]), int(addr[1]))

    @property
    def port(self) -> int:
        return self.local_address[1]

    async def recv(self, *, timeout: float | None = None) -> Datagram:
        while not self._queue:
            if self._closed.is_set():
                raise ConnectionError("UDP endpoint closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise NetTimeout("recv: no datagram within deadline") from None
            finally:
                self._waiter = None
        return self._queue.popleft()

    def send(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        assert self.transport is not None
        try:
            self.transport.sendto(data, addr)
        except OSError as exc:
            raise translate_os_error(exc, addr, action="sendto") from None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


async def open_udp(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    remote: tuple[str, int] | None = None,
    on_datagram: DatagramHandler | None = None,
    max_queue: int = 4096,
    socket_buffer: int = 4 * 1024 * 1024,
) -> UdpEndpoint:
    """Bind a UDP socket (port 0: any free port). Raises AddressInUse and friends."""
    loop = asyncio.get_running_loop()
    endpoint = UdpEndpoint(max_queue=max_queue, on_datagram=on_datagram)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, socket_buffer)
        sock.bind((host, port))
        if remote is not None:
            sock.connect(remote)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise translate_os_error(exc, (host, port), action="udp bind") from None
    transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(endpoint), sock=sock)
    endpoint.transport = transport
    return endpoint
