"""The RTMP server: an asyncio adapter around the sans-I/O handshake and session.

Publishing: `rtmp://HOST:PORT/APP/NAME?key=KEY`, or OBS style `rtmp://HOST:PORT/APP` with the
stream key as the stream name. The publish is checked by the `authorize` callable (the node's
publish authorizer); a refused key gets onStatus NetStream.Publish.Denied, a name already live gets
NetStream.Publish.BadName, and the connection is closed. The publisher's FLV media become access
units in the live registry once every announced track has its sequence header; a publisher that
disconnects, goes idle, or sends deleteStream/FCUnpublish ends the stream cleanly.

Playing: `rtmp://HOST:PORT/APP/NAME` through the stream's `FlvHub` (shared serialization, GOP
cache, batched writes, GOP-aware dropping).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from hivecast.config.settings import RtmpSettings
from hivecast.media import LiveRegistry, Publisher, StreamBusyError
from hivecast.net import Connection, ConnectionLimits, NetError, TcpServer
from hivecast.net.errors import translate_os_error
from hivecast.rtmp.chunk import AUDIO, VIDEO
from hivecast.rtmp.errors import FlvError, RtmpError
from hivecast.rtmp.fanout import FanoutManager, RtmpHubReader
from hivecast.rtmp.handshake import ServerHandshake
from hivecast.rtmp.mapping import FlvToUnits
from hivecast.rtmp.session import (
    ConnectRequested,
    Event,
    MediaReceived,
    MetadataReceived,
    PlayRequested,
    PublishRequested,
    ServerSession,
    SessionLimits,
    State,
    StreamClosed,
)

log = logging.getLogger(__name__)

Authorize = Callable[[str, "str | None"], Awaitable[bool]]
KeyResolver = Callable[[str], "str | None"]

MAX_BUFFERED_BEFORE_LIVE = 600  # media messages held while waiting for every sequence header
MAX_BAD_TAGS = 50


def split_name(raw: str) -> tuple[str, str | None]:
    """'name?key=K&x=y' -> ('name', 'K')."""
    name, _, query = raw.partition("?")
    keys = parse_qs(query).get("key") if query else None
    return name.strip("/"), (keys[0] if keys else None)


@dataclass
class _Publishing:
    stream_id: int
    name: str
    ingest: FlvToUnits = field(default_factory=FlvToUnits)
    publisher: Publisher | None = None
    held: list[tuple[int, int, bytes]] = field(default_factory=list)
    bad_tags: int = 0
    frames: int = 0
    bytes: int = 0
    window_bytes: int = 0
    window_frames: int = 0
    window_start: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Playing:
    stream_id: int
    name: str
    reader: RtmpHubReader


class RtmpServer:
    def __init__(self, registry: LiveRegistry, fanout: FanoutManager, *, host: str, port: int,
                 settings: RtmpSettings, authorize: Authorize, resolve_key: KeyResolver | None = None,
                 limits: ConnectionLimits | None = None, bus: Any = None,
                 tls: ssl.SSLContext | None = None, tls_port: int = 1936) -> None:
        self.registry = registry
        self.fanout = fanout
        self.settings = settings
        self.authorize = authorize
        self.resolve_key = resolve_key
        self.bus = bus
        base = limits or ConnectionLimits()
        self.limits = ConnectionLimits(
            max_connections=base.max_connections, idle_timeout=settings.idle_timeout,
            read_buffer=max(base.read_buffer, 64 * 1024), write_buffer_high=base.write_buffer_high,
            write_buffer_max=max(base.write_buffer_max, settings.reader_buffer_bytes * 2),
            write_timeout=settings.write_timeout, connect_timeout=base.connect_timeout)
        self.session_limits = SessionLimits(max_chunk_size=settings.max_chunk_size,
                                            max_message_size=settings.max_message_size,
                                            max_streams=settings.max_streams_per_connection)
        self._tcp = TcpServer(self._handle, host=host, port=port, limits=self.limits, name="rtmp")
        self._tls = (TlsTcpServer(self._handle, host=host, port=tls_port, limits=self.limits, name="rtmps",
                                  ssl_context=tls) if tls is not None else None)
        self.publishers = 0
        self.players = 0
        self.bytes_received = 0
        self.refused = 0
        self.protocol_errors = 0
        self.live: dict[str, _Publishing] = {}  # stream name -> its RTMP publisher, for per-stream metrics
        self._conns: dict[int, tuple[Connection, dict[int, _Publishing], dict[int, _Playing], float]] = {}

    @property
    def port(self) -> int:
        return self._tcp.port

    @property
    def tls_port(self) -> int | None:
        return self._tls.port if self._tls is not None else None

    @property
    def connections(self) -> int:
        return self._tcp.active_connections + (self._tls.active_connections if self._tls is not None else 0)

    def sessions(self) -> list[dict[str, Any]]:
        """Per-connection figures (for the API and debugging): peer, role, streams, bytes, drops."""
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        for conn, publishing, playing, since in list(self._conns.values()):
            role = "publisher" if publishing else "player" if playing else "connecting"
            streams = [p.name for p in publishing.values()] + [p.name for p in playing.values()]
            entry: dict[str, Any] = {"peer": f"{conn.peer[0]}:{conn.peer[1]}", "role": role, "streams": streams,
                                     "seconds": round(now - since, 1), "bytes_in": conn.bytes_read}
            if publishing:
                pub = next(iter(publishing.values()))
                entry.update(frames=pub.frames, bitrate_kbps=pub.figures.get("bitrate_kbps", 0.0))
            if playing:
                entry.update(bytes_out=sum(p.reader.sent_bytes for p in playing.values()),
                             dropped_gops=sum(p.reader.dropped_gops for p in playing.values()))
            out.append(entry)
        return out

    async def start(self) -> None:
        await self._tcp.start()
        if self._tls is not None:
            try:
                await self._tls.start()
            except BaseException:
                await self._tcp.close(grace=0.1)
                raise

    async def close(self, grace: float = 1.0) -> None:
        if self._tls is not None:
            await self._tls.close(grace=grace)
        await self._tcp.close(grace=grace)

    # -- one connection ------------------------------------------------------------------------
    async def _handle(self, conn: Connection) -> None:
        hs = ServerHandshake(now_ms=int(time.monotonic() * 1000))
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                while not hs.done:
                    data = await conn.read(8192)
                    if not data:
                        return
                    hs.receive_data(data)
                    out = hs.data_to_send()
                    if out:
                        conn.write(out)
                await conn.drain()
        except TimeoutError:
            log.debug("rtmp %s: handshake not finished in time", conn.peer)
            return
        except RtmpError as exc:
            log.debug("rtmp %s: %s", conn.peer, exc)
            self.protocol_errors += 1
            return
        session = ServerSession(limits=self.session_limits, chunk_size=self.settings.chunk_size)
        publishing: dict[int, _Publishing] = {}
        playing: dict[int, _Playing] = {}
        self._conns[id(conn)] = (conn, publishing, playing, time.monotonic())
        data = hs.leftover
        try:
            while True:
                if data:
                    self.bytes_received += len(data)
                    events = session.receive_data(data)
                    for event in events:
                        await self._event(conn, session, event, publishing, playing)
                out = session.data_to_send()
                if out and not conn.closing:
                    conn.write(out)
                if session.state is State.CLOSED or conn.closing:
                    break
                # Players may send nothing for long stretches (acks come every window): only their
                # write side is on a deadline. Publishers and idle connections are on the idle timeout.
                timeout = 3600.0 if playing and not publishing else self.settings.idle_timeout
                data = await conn.read(65536, timeout=timeout)
                if not data:
                    break
        except RtmpError as exc:
            self.protocol_errors += 1
            log.info("rtmp %s: dropping connection: %s", conn.peer, exc)
        except NetError as exc:
            log.debug("rtmp %s: %s", conn.peer, exc)
        finally:
            self._conns.pop(id(conn), None)
            for pub in publishing.values():
                self._end_publish(pub)
            for play in playing.values():
                play.reader.hub.remove(play.reader)
            if playing:
                self.players -= len(playing)

    async def _event(self, conn: Connection, session: ServerSession, event: Event,
                     publishing: dict[int, _Publishing], playing: dict[int, _Playing]) -> None:
        if isinstance(event, MediaReceived):
            pub = publishing.get(event.stream_id)
            if pub is not None:
                self._media(pub, event.message.type_id, event.message.timestamp, event.message.payload)
        elif isinstance(event, MetadataReceived):
            pub = publishing.get(event.stream_id)
            if pub is not None:
                pub.ingest.set_metadata(event.metadata)
        elif isinstance(event, ConnectRequested):
            app = event.app.partition("?")[0]
            if app != self.settings.app:
                session.reject_connect(f"unknown application {event.app!r}")
                self.refused += 1
            else:
                session.accept_connect(fourcc_list=["hvc1", "avc1", "Opus", "mp4a"] if event.fourcc_list else None)
        elif isinstance(event, PublishRequested):
            await self._publish(conn, session, event, publishing)
        elif isinstance(event, PlayRequested):
            await self._play(conn, session, event, playing)
        elif isinstance(event, StreamClosed):
            pub = publishing.pop(event.stream_id, None)
            if pub is not None:
                self._end_publish(pub)
            play = playing.pop(event.stream_id, None)
            if play is not None:
                play.reader.hub.remove(play.reader)
                self.players -= 1

    async def _publish(self, conn: Connection, session: ServerSession, event: PublishRequested,
                       publishing: dict[int, _Publishing]) -> None:
        name, key = split_name(event.name)
        if key is None:
            # Some encoders put the key on the application: rtmp://host/live?key=K/name.
            _, app_key = split_name(session.app)
            key = app_key
        if key is None and self.resolve_key is not None and name:
            # OBS style: the stream key is the name; the authorizer's key maps to the stream name.
            resolved = self.resolve_key(name)
            if resolved is not None:
                name, key = resolved, name
        if not name or "/" in name or len(name) > 200:
            session.reject_publish(event.stream_id, "NetStream.Publish.BadName", "invalid stream name")
            session.state = State.CLOSED
            self.refused += 1
            return
        allowed = await self.authorize(name, key if key is not None else name)
        if not allowed:
            log.info("rtmp %s: publish to %s refused (bad key)", conn.peer, name)
            session.reject_publish(event.stream_id, "NetStream.Publish.Denied", "publishing refused: bad stream key")
            session.state = State.CLOSED
            self.refused += 1
            return
        if self.registry.get(name) is not None and not self.registry.allow_replace:
            session.reject_publish(event.stream_id, "NetStream.Publish.BadName", f"{name} is already published")
            session.state = State.CLOSED
            self.refused += 1
            return
        session.accept_publish(event.stream_id)
        publishing[event.stream_id] = _Publishing(event.stream_id, name, window_start=time.monotonic())
        log.info("rtmp %s: publishing %s", conn.peer, name)

    def _media(self, pub: _Publishing, type_id: int, timestamp: int, payload: bytes) -> None:
        pub.bytes += len(payload)
        pub.window_bytes += len(payload)
        if pub.publisher is None:
            # Hold media until every announced track has its sequence header, then go live.
            self._convert(pub, type_id, timestamp, payload, send=False)
            pub.held.append((type_id, timestamp, payload))
            ready = pub.ingest.ready or (len(pub.held) >= MAX_BUFFERED_BEFORE_LIVE // 2
                                         and bool(pub.ingest.video_config or pub.ingest.audio_ready))
            if ready:
                self._go_live(pub)
            elif len(pub.held) >= MAX_BUFFERED_BEFORE_LIVE:
                raise RtmpError(f"publisher of {pub.name} sent no usable sequence header")
            return
        if not pub.publisher.active:
            raise RtmpError(f"stream {pub.name} was taken over or closed")
        self._convert(pub, type_id, timestamp, payload, send=True)
        now = time.monotonic()
        if now - pub.window_start >= 1.0:
            self._report(pub, now)

    def _convert(self, pub: _Publishing, type_id: int, timestamp: int, payload: bytes, *, send: bool) -> None:
        try:
            if type_id == VIDEO:
                au = pub.ingest.video(timestamp, payload)
            elif type_id == AUDIO:
                au = pub.ingest.audio(timestamp, payload)
            else:
                return
        except FlvError as exc:
            pub.bad_tags += 1
            if pub.bad_tags > MAX_BAD_TAGS:
                raise RtmpError(f"publisher of {pub.name} sends malformed media: {exc}") from None
            return
        if au is not None and send and pub.publisher is not None:
            if au.track == 0:
                pub.frames += 1
                pub.window_frames += 1
            pub.publisher.send(au)

    def _go_live(self, pub: _Publishing) -> None:
        tracks = pub.ingest.tracks()
        if not tracks:
            raise RtmpError(f"publisher of {pub.name} has no track this server can carry")
        try:
            pub.publisher = self.registry.publish(pub.name, tracks, source="rtmp")
        except StreamBusyError:
            raise RtmpError(f"stream {pub.name} went live elsewhere first") from None
        self.publishers += 1
        self.live[pub.name] = pub
        held, pub.held = pub.held, []
        # Replay through a fresh converter so timestamps and parameter sets start clean.
        pub.ingest = _fresh(pub.ingest)
        for type_id, ts, payload in held:
            self._convert(pub, type_id, ts, payload, send=True)

    def _report(self, pub: _Publishing, now: float) -> None:
        elapsed = now - pub.window_start
        figures = {"protocol": "rtmp", "bitrate_bps": round(pub.window_bytes * 8 / elapsed),
                   "bitrate_kbps": round(pub.window_bytes * 8 / elapsed / 1000, 1),
                   "fps": round(pub.window_frames / elapsed, 2), "frames": pub.frames, "bytes": pub.bytes,
                   "dropped_frames": 0}
        pub.window_bytes = pub.window_frames = 0
        pub.window_start = now
        pub.figures = dict(figures)
        if pub.publisher is not None:
            pub.publisher.update_qos(**figures)
            hub = self.fanout.hubs.get(pub.name)
            if hub is not None:
                figures.update(rtmp_readers=len(hub.readers), dropped_gops=hub.figures()["dropped_gops"])
            self.registry.report_qos(pub.name, figures)

    def _end_publish(self, pub: _Publishing) -> None:
        if pub.publisher is not None:
            if pub.publisher.active:
                pub.publisher.close()
            self.publishers -= 1
            pub.publisher = None
            if self.live.get(pub.name) is pub:
                del self.live[pub.name]
            log.info("rtmp: %s unpublished", pub.name)

    async def _play(self, conn: Connection, session: ServerSession, event: PlayRequested,
                    playing: dict[int, _Playing]) -> None:
        name, _key = split_name(event.name)
        deadline = time.monotonic() + self.settings.play_wait
        hub = self.fanout.hub(name)
        while hub is None and time.monotonic() < deadline and not conn.closing:
            conn.write(session.data_to_send())
            await asyncio.sleep(0.1)
            hub = self.fanout.hub(name)
        if hub is None:
            session.reject_play(event.stream_id, "NetStream.Play.StreamNotFound", f"{name} is not live")
            session.state = State.CLOSED
            return
        session.accept_play(event.stream_id)
        out = session.data_to_send()
        if out:
            conn.write(out)
        reader, first = hub.add_rtmp(conn.transport, event.stream_id)
        conn.write(first)
        sid = event.stream_id

        def ended() -> None:
            if not conn.closing:
                session.end_play(sid)
                conn.transport.write(session.data_to_send())
                conn.transport.close()

        reader.on_end = ended
        playing[sid] = _Playing(sid, name, reader)
        self.players += 1


class TlsTcpServer(TcpServer):
    """RTMPS: the same connection handler behind TLS (the foundation's TcpServer listens in clear)."""

    def __init__(self, handler: Any, *, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._ssl = ssl_context

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.requested_port, limit=self.limits.read_buffer, reuse_address=True,
                backlog=1024, ssl=self._ssl, ssl_handshake_timeout=10.0)
        except OSError as exc:
            raise translate_os_error(exc, (self.host, self.requested_port), action="rtmps listen") from None


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def _fresh(old: FlvToUnits) -> FlvToUnits:
    new = FlvToUnits()
    new.set_metadata(old.metadata)
    return new
