"""HTTP-FLV through the edge tier: one upstream connection per stream per edge, fanned out locally.

On an edge node, `/live/NAME.flv` is served from an edge-local live registry. The first viewer of
a stream starts one upstream HTTP-FLV fetch of `ORIGIN/live/NAME.flv` (the parent if one is
configured) whose tags are turned back into access units and published into the local registry;
every viewer of that edge then reads through the same `FlvHub` (shared serialization, GOP cache,
GOP-aware drops). The upstream is closed a few seconds after the last local viewer leaves, or
when the origin ends the stream.

`/live/NAME.flv` is a `.flv` suffix route under `/live/`; every other path stays with the edge cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hivecast.media import LiveRegistry, Publisher, StreamBusyError
from hivecast.net import NetError, connect
from hivecast.net.errors import ConnectionReset, NetTimeout, translate_os_error
from hivecast.net.tcp import Connection
from hivecast.rtmp import flv
from hivecast.rtmp.chunk import AUDIO, VIDEO
from hivecast.rtmp.errors import FlvError, RtmpError
from hivecast.rtmp.fanout import FanoutManager, FanoutSettings
from hivecast.rtmp.httpflv import HttpFlv
from hivecast.rtmp.mapping import FlvToUnits

if TYPE_CHECKING:
    from hivecast.node.node import Node

log = logging.getLogger(__name__)

MAX_HEADER = 16 * 1024
LINGER = 5.0  # seconds the upstream stays open after the last local viewer left


async def _open(url: str, timeout: float) -> tuple[Connection, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=ssl.create_default_context())
        except TimeoutError:
            raise NetTimeout("connect: timed out", address=(host, port)) from None
        except OSError as exc:
            raise translate_os_error(exc, (host, port), action="connect") from None
        from hivecast.net import ConnectionLimits

        return Connection(reader, writer, ConnectionLimits(idle_timeout=timeout)), host
    return await connect(host, port, timeout=timeout), host


async def fetch_flv(url: str, *, timeout: float = 10.0) -> Any:
    """Yield the body of an HTTP-FLV response as it arrives (chunked or close-delimited)."""
    conn, host = await _open(url, timeout)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        await conn.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: video/x-flv\r\nConnection: close\r\n"
                        f"User-Agent: hivecast-edge\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = await conn.read(4096, timeout=timeout)
            if not data:
                raise ConnectionReset("upstream closed before the response head")
            head += data
            if len(head) > MAX_HEADER:
                raise RtmpError("upstream response head too large")
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            raise RtmpError(f"upstream answered {lines[0]!r}")
        chunked = any(ln.lower().startswith("transfer-encoding:") and "chunked" in ln.lower() for ln in lines[1:])
        if not chunked:
            if rest:
                yield rest
            while data := await conn.read(65536, timeout=timeout):
                yield data
            return
        buf = bytearray(rest)
        while True:
            while b"\r\n" not in buf:
                more = await conn.read(65536, timeout=timeout)
                if not more:
                    return
                buf += more
                if len(buf) > MAX_HEADER and b"\r\n" not in buf:
                    raise RtmpError("bad chunk size line from upstream")
            line, _, tail = bytes(buf).partition(b"\r\n")
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                raise RtmpError("bad chunk size line from upstream") from None
            if size == 0:
                return
            buf = bytearray(tail)
            while len(buf) < size + 2:
                more = await conn.read(65536, timeout=timeout)
                if not more:
                    raise ConnectionReset("upstream closed inside a chunk")
                buf += more
            yield bytes(buf[:size])
            del buf[: size + 2]
    finally:
        await conn.close(timeout=0.5)


class _Upstream:
    def __init__(self, edge: FlvEdge, name: str, url: str) -> None:
        self.edge = edge
        self.name = name
        self.url = url
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"flv upstream {name}")
        self.publisher: Publisher | None = None
        self.bytes = 0

    async def _run(self) -> None:
        registry = self.edge.registry
        ingest = FlvToUnits()
        tags = flv.TagReader()
        held: list[flv.Tag] = []
        idle_since: float | None = None
        try:
            async for data in fetch_flv(self.url, timeout=self.edge.timeout):
                self.bytes += len(data)
                for tag in tags.feed(data):
                    if tag.tag_type not in (AUDIO, VIDEO):
                        continue
                    try:
                        au = ingest.video(tag.timestamp, tag.payload) if tag.tag_type == VIDEO else ingest.audio(
                            tag.timestamp, tag.payload)
                    except FlvError:
                        continue
                    if self.publisher is None:
                        held.append(tag)
                        if ingest.ready or len(held) > 300:
                            self.publisher = registry.publish(self.name, ingest.tracks(), source=f"edge {self.url}")
                            replay = FlvToUnits()
                            for t in held:
                                with contextlib.suppress(FlvError):
                                    u = replay.video(t.timestamp, t.payload) if t.tag_type == VIDEO else replay.audio(
                                        t.timestamp, t.payload)
                                    if u is not None:
                                        self.publisher.send(u)
                            ingest = replay
                            held.clear()
                    elif au is not None:
                        self.publisher.send(au)
                # Close the upstream once nobody on this edge watches any more.
                hub = self.edge.fanout.hubs.get(self.name)
                if self.publisher is not None and (hub is None or not hub.readers):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > LINGER:
                        return
                else:
                    idle_since = None
        except (NetError, RtmpError, FlvError, StreamBusyError) as exc:
            log.info("edge upstream %s: %s", self.url, exc)
        finally:
            if self.publisher is not None:
                self.publisher.close()
            self.edge.upstreams.pop(self.name, None)


class FlvEdge:
    """The edge role's HTTP-FLV: `node.services["flv_edge"]`."""

    name = "flv-edge"

    def __init__(self) -> None:
        self.registry = LiveRegistry()
        self.fanout = FanoutManager(self.registry, FanoutSettings())
        self.upstreams: dict[str, _Upstream] = {}
        self.origin = ""
        self.timeout = 10.0

    async def start(self, node: Node) -> None:
        settings = node.settings
        self.origin = (settings.parent_url or settings.origin_url or "").rstrip("/")
        cfg = settings.rtmp
        self.registry.bus = node.bus
        self.fanout = FanoutManager(self.registry, FanoutSettings(
            batch_ms=cfg.batch_ms, chunk_size=cfg.chunk_size, max_queue_bytes=cfg.reader_buffer_bytes,
            write_timeout=cfg.write_timeout))
        play = HttpFlv(self.fanout, play_wait=min(cfg.play_wait, 5.0), idle_timeout=cfg.idle_timeout,
                       on_miss=self._ensure_upstream)

        node.router.prefix("/live/", play, suffix=".flv")
        node.services["flv_edge"] = self

    def _ensure_upstream(self, name: str) -> None:
        if self.origin and name not in self.upstreams and self.registry.get(name) is None:
            self.upstreams[name] = _Upstream(self, name, f"{self.origin}/live/{name}.flv")

    async def stop(self) -> None:
        for up in list(self.upstreams.values()):
            up.task.cancel()
        for up in list(self.upstreams.values()):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(up.task, 1.0)
        self.fanout.close()
        self.registry.close_all()
