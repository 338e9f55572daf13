"""Our RTMP client (asyncio adapter over ClientHandshake and ClientSession): publish and play.

Used by the push relay (to other RTMP servers), the pull source, tests and the CLI. `rtmps://`
URLs connect over TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hivecast.net import Connection, ConnectionLimits, connect
from hivecast.net.errors import ConnectionReset, NetTimeout, translate_os_error
from hivecast.rtmp.errors import RtmpError, StatusError
from hivecast.rtmp.handshake import ClientHandshake
from hivecast.rtmp.session import (
    ClientSession,
    CommandFailed,
    Connected,
    Event,
    StatusReceived,
    StreamCreated,
    raise_for_status,
)


@dataclass(frozen=True, slots=True)
class RtmpUrl:
    scheme: str
    host: str
    port: int
    app: str
    name: str

    @property
    def tc_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.app}"


def parse_url(url: str) -> RtmpUrl:
    parts = urlsplit(url)
    if parts.scheme not in ("rtmp", "rtmps"):
        raise ValueError(f"not an rtmp:// or rtmps:// URL: {url}")
    if not parts.hostname:
        raise ValueError(f"no host in {url}")
    path = parts.path.lstrip("/")
    app, _, name = path.partition("/")
    if parts.query:
        name = f"{name}?{parts.query}"
    port = parts.port or (443 if parts.scheme == "rtmps" else 1935)
    return RtmpUrl(parts.scheme, parts.hostname, port, app, name)


class RtmpClient:
    def __init__(self, conn: Connection, url: RtmpUrl, session: ClientSession) -> None:
        self.conn = conn
        self.url = url
        self.session = session
        self._events: list[Event] = []

    @classmethod
    async def open(cls, url: str, *, timeout: float = 10.0, enhanced: bool = True,
                   limits: ConnectionLimits | None = None) -> RtmpClient:
        u = parse_url(url)
        limits = limits or ConnectionLimits(idle_timeout=timeout)
        if u.scheme == "rtmps":
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(u.host, u.port, ssl=ssl.create_default_context(),
                                                                   limit=limits.read_buffer)
            except TimeoutError:
                raise NetTimeout("connect: timed out", address=(u.host, u.port)) from None
            except OSError as exc:
                raise translate_os_error(exc, (u.host, u.port), action="connect") from None
            conn = Connection(reader, writer, limits)
        else:
            conn = await connect(u.host, u.port, limits=limits, timeout=timeout)
        try:
            hs = ClientHandshake(now_ms=int(time.monotonic() * 1000) & 0xFFFFFFFF)
            await conn.send(hs.start())
            async with asyncio.timeout(timeout):
                c2 = b""
                while not hs.done:
                    data = await conn.read(8192)
                    if not data:
                        raise ConnectionReset("closed during the handshake", address=(u.host, u.port))
                    c2 = hs.receive_data(data)
            session = ClientSession()
            client = cls(conn, u, session)
            conn.write(c2)
            session.connect(u.app, u.tc_url, fourcc_list=["hvc1", "av01", "vp09", "avc1", "Opus", "mp4a"]
                            if enhanced else None)
            await client.flush()
            if hs.leftover:
                client._events += session.receive_data(hs.leftover)
            await client.wait_for(Connected, timeout=timeout)
            return client
        except BaseException:
            conn.abort()
            raise

    async def flush(self) -> None:
        out = self.session.data_to_send()
        if out:
            self.conn.write(out)
            await self.conn.drain()

    async def _read(self, timeout: float) -> None:
        data = await self.conn.read(65536, timeout=timeout)
        if not data:
            raise ConnectionReset("server closed the connection", address=(self.url.host, self.url.port))
        self._events += self.session.receive_data(data)
        await self.flush()

    async def wait_for(self, kind: type[Any], *, timeout: float = 10.0, code_prefix: str = "") -> Any:
        """The next event of `kind` (other events stay queued); an error status raises StatusError."""
        async with asyncio.timeout(timeout):
            while True:
                for i, ev in enumerate(self._events):
                    if isinstance(ev, CommandFailed) or (isinstance(ev, StatusReceived) and ev.level == "error"):
                        del self._events[i]
                        raise_for_status(ev)
                    if isinstance(ev, kind) and (not code_prefix or getattr(ev, "code", "").startswith(code_prefix)):
                        del self._events[i]
                        return ev
                await self._read(timeout)

    async def publish(self, name: str | None = None, *, timeout: float = 10.0) -> None:
        name = self.url.name if name is None else name
        self.session.create_stream(name)
        await self.flush()
        await self.wait_for(StreamCreated, timeout=timeout)
        self.session.publish(name)
        await self.flush()
        await self.wait_for(StatusReceived, timeout=timeout, code_prefix="NetStream.Publish.Start")

    async def play(self, name: str | None = None, *, timeout: float = 10.0) -> None:
        name = self.url.name if name is None else name
        self.session.create_stream()
        await self.flush()
        await self.wait_for(StreamCreated, timeout=timeout)
        self.session.play(name)
        await self.flush()
        await self.wait_for(StatusReceived, timeout=timeout, code_prefix="NetStream.Play.Start")

    async def events(self, timeout: float = 30.0) -> list[Event]:
        """Whatever arrived (reading once if nothing is queued)."""
        if not self._events:
            await self._read(timeout)
        out, self._events = self._events, []
        for ev in out:
            if isinstance(ev, StatusReceived) and ev.level == "error":
                raise StatusError(ev.code, ev.description)
        return out

    async def consume(self) -> None:
        """Read and answer the server (acks, pings) until it closes; an error status raises StatusError."""
        while True:
            await self._read(3600.0)
            events, self._events = self._events, []
            for ev in events:
                if isinstance(ev, StatusReceived) and ev.level == "error":
                    raise StatusError(ev.code, ev.description)

    def send_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        self.session.send_media(type_id, timestamp, payload)

    def send_metadata(self, metadata: dict[str, Any]) -> None:
        self.session.send_metadata(metadata)

    async def close(self) -> None:
        try:
            if self.session.stream_id:
                self.session.close_stream(self.url.name)
                out = self.session.data_to_send()
                if out and not self.conn.closing:
                    self.conn.write(out)
        except (RtmpError, OSError, ConnectionReset):
            pass
        await self.conn.close(timeout=1.0)
