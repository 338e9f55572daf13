"""A small HTTP/1.1 GET client with keep-alive and a pacing throttle (a token bucket on loopback).

The throttle takes a rate schedule `rate(t) -> bits/s` on the player's clock, so a test can step the
link (8 -> 1 -> 8 Mbit/s) without a proxy; `speed` runs that clock faster than the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 512 * 1024 * 1024
CHUNK = 16 * 1024

RateSchedule = Callable[[float], float | None]


class FetchError(Exception):
    pass


class Pacer:
    """Token bucket with a small burst: `delay(nbytes, now)` says how long to wait before taking them."""

    def __init__(self, rate: RateSchedule, burst_bytes: int = 32 * 1024) -> None:
        self.rate = rate
        self.burst = burst_bytes
        self.tokens = float(burst_bytes)
        self.last: float | None = None

    def delay(self, nbytes: int, now: float) -> float:
        bps = self.rate(now)
        if bps is None:
            return 0.0
        bytes_per_s = max(1.0, bps / 8)
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * bytes_per_s)
        self.last = now
        self.tokens -= nbytes
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / bytes_per_s


@dataclass(slots=True)
class FetchResult:
    status: int
    body: bytes
    seconds: float  # on the player's clock


class Fetcher:
    def __init__(self, *, rate: RateSchedule | None = None, clock: Callable[[], float] | None = None,
                 speed: float = 1.0, timeout: float = 30.0) -> None:
        self.speed = speed
        self.clock = clock or (lambda: time.monotonic() * speed)
        self.pacer = Pacer(rate) if rate is not None else None
        self.timeout = timeout
        # Idle keep-alive connections per origin; concurrent requests each take their own.
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self.bytes = 0

    async def get(self, url: str) -> FetchResult:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise FetchError(f"only http:// URLs are supported: {url}")
        key = (parts.hostname, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        started = self.clock()
        for attempt in range(2):
            idle = self._idle.setdefault(key, [])
            reused = bool(idle)
            conn = idle.pop() if idle else None
            try:
                async with asyncio.timeout(self.timeout):
                    if conn is None:
                        conn = await asyncio.open_connection(key[0], key[1], limit=MAX_HEAD)
                    status, body, keep = await self._request(conn, key, target)
                if keep:
                    idle.append(conn)
                else:
                    conn[1].close()
                return FetchResult(status, body, self.clock() - started)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if conn is not None:
                    conn[1].close()
                if attempt == 1 or not reused:
                    raise FetchError(f"GET {url}: {exc}") from None
            except TimeoutError:
                if conn is not None:
                    conn[1].close()
                raise FetchError(f"GET {url}: timed out") from None
            except OSError as exc:
                if conn is not None:
                    conn[1].close()
                raise FetchError(f"GET {url}: {exc}") from None
        raise FetchError(f"GET {url}: failed")  # pragma: no cover

    async def _request(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], key: tuple[str, int],
                       target: str) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {key[0]}:{key[1]}\r\nUser-Agent: hivecast-play\r\n\r\n".encode())
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise FetchError("response head too large") from None
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise FetchError(f"bad status line {lines[0]!r}") from None
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(reader)
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY:
                raise FetchError("response body too large")
            body = await self._read(reader, length)
        return status, body, headers.get("connection", "").lower() != "close"

    async def _read(self, reader: asyncio.StreamReader, length: int) -> bytes:
        parts: list[bytes] = []
        remaining = length
        while remaining > 0:
            n = min(CHUNK, remaining)
            if self.pacer is not None:
                wait = self.pacer.delay(n, self.clock())
                if wait > 0:
                    await asyncio.sleep(wait / self.speed)
            parts.append(await reader.readexactly(n))
            remaining -= n
        self.bytes += length
        return b"".join(parts)

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise FetchError("bad chunk size") from None
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise FetchError("response body too large")
            parts.append(await self._read(reader, size))
            await reader.readexactly(2)

    async def close(self) -> None:
        for conns in self._idle.values():
            for _reader, writer in conns:
                writer.close()
        self._idle.clear()
