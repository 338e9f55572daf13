"""The RTSP server (asyncio adapter): publishers ANNOUNCE/RECORD, readers DESCRIBE/SETUP/PLAY.

Transports: RTP/AVP over UDP through one shared server port pair (RTP on `rtp_port`, RTCP on the
next port; datagrams are told apart by their source address) and RTP/AVP/TCP interleaved on the
RTSP connection. Protocol rules live in the sans-I/O modules (message, sdp, transport, session,
ingest, relay); this module owns sockets, timeouts and the once-a-second RTCP/QoS tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hivecast.config.settings import RtspSettings
from hivecast.media.live import LiveRegistry, Publisher, StreamBusyError, TrackInfo
from hivecast.net import Connection, ConnectionLimits, NetError, TcpServer, UdpEndpoint, open_udp
from hivecast.rtp import MalformedPacket, is_rtcp
from hivecast.rtp.rtcp import Bye, parse_compound
from hivecast.rtsp.auth import (
    REALM,
    NonceIssuer,
    digest_ok,
    parse_digest,
    request_key,
    split_track,
    stream_name,
)
from hivecast.rtsp.describe import AnnouncedTrack, control_for, describe, tracks_from_sdp
from hivecast.rtsp.errors import (
    Forbidden,
    MethodNotValid,
    ProtocolError,
    RtspError,
    SdpError,
    SessionNotFound,
    StreamBusy,
    StreamNotFound,
    Unauthorized,
    UnsupportedTransport,
)
from hivecast.rtsp.ingest import StreamClock, TrackReceiver
from hivecast.rtsp.message import (
    METHODS,
    Headers,
    InterleavedFrame,
    MessageParser,
    Request,
    Response,
    interleaved,
    parse_header_params,
)
from hivecast.rtsp.relay import ReaderTrack, RelayReader, StreamRelay
from hivecast.rtsp.sdp import SessionDescription
from hivecast.rtsp.session import State, new_session_id, next_state
from hivecast.rtsp.transport import TransportSpec, parse_transport

log = logging.getLogger(__name__)

Authorize = Callable[[str, str | None], Awaitable[bool]]
LocalKey = Callable[[str], str | None]  # the configured key of a stream, when known here (enables Digest)
PLAYING_TCP_READ_TIMEOUT = 86_400.0
MAX_SESSIONS_PER_CONNECTION = 16
PUBLIC = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER, SET_PARAMETER"


@dataclass(eq=False)
class ConnContext:
    conn: Connection
    sessions: dict[str, ServerSession] = field(default_factory=dict)
    channels: dict[int, tuple[ServerSession, int, bool]] = field(default_factory=dict)  # ch -> (s, track, rtcp)
    # Work to do once the current response is written (media must follow the PLAY response, since
    # players discard interleaved data that arrives before it).
    after_response: list[Callable[[], None]] = field(default_factory=list)


@dataclass(eq=False)
class ServerSession:
    id: str
    ctx: ConnContext
    name: str
    state: State = State.INIT
    kind: str = ""  # "play" or "record"
    tcp: bool | None = None
    last_activity: float = field(default_factory=time.monotonic)
    # record side
    announced: list[AnnouncedTrack] = field(default_factory=list)
    receivers: dict[int, TrackReceiver] = field(default_factory=dict)
    record_setup: dict[int, TransportSpec] = field(default_factory=dict)
    publisher: Publisher | None = None
    clock: StreamClock = field(default_factory=StreamClock)
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    # play side
    reader_tracks: dict[int, ReaderTrack] = field(default_factory=dict)
    reader: RelayReader | None = None
    closed: bool = False


class RtspServer:
    def __init__(self, registry: LiveRegistry, *, host: str, port: int, settings: RtspSettings,
                 authorize: Authorize, limits: ConnectionLimits | None = None,
                 local_key: LocalKey | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.host = host
        self._authorize = authorize
        self._local_key = local_key
        self._nonces = NonceIssuer()
        self._tcp = TcpServer(self._handle, host=host, port=port, name="rtsp",
                              limits=limits or ConnectionLimits(idle_timeout=settings.session_timeout))
        self.rtp: UdpEndpoint | None = None
        self.rtcp: UdpEndpoint | None = None
        self.sessions: dict[str, ServerSession] = {}
        self.relays: dict[str, StreamRelay] = {}
        self._udp_rtp_sources: dict[tuple[str, int], tuple[ServerSession, int]] = {}
        self._udp_rtcp_sources: dict[tuple[str, int], tuple[ServerSession, int]] = {}
        self._tick_task: asyncio.Task[None] | None = None
        # A second handle on the RTP socket for the fan-out: a non-blocking sendto straight to the
        # kernel, so a full socket drops that datagram (counted) instead of queueing in user space,
        # where one burst would hold back every reader behind a shared buffer.
        self._rtp_send_sock: socket.socket | None = None
        self.protocol_errors = 0
        self._last_bytes: dict[str, tuple[int, float]] = {}
        self.requests = 0

    # --- life cycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._tcp.port

    @property
    def rtp_port(self) -> int:
        assert self.rtp is not None
        return self.rtp.port

    async def start(self) -> None:
        await self._tcp.start()
        await self._open_udp_pair()
        self._tick_task = asyncio.get_running_loop().create_task(self._tick_loop(), name="rtsp-tick")
        log.info("rtsp listening on %s:%d (rtp/rtcp udp %d-%d)", self.host, self.port, self.rtp_port,
                 self.rtp_port + 1)

    async def _open_udp_pair(self) -> None:
        host = "0.0.0.0" if self.host in ("", "0.0.0.0") else self.host
        requested = self.settings.rtp_port
        for _ in range(64):
            rtp = await open_udp(host, requested, on_datagram=self._on_rtp_datagram, socket_buffer=8 << 20)
            port = rtp.port
            if port % 2 == 0 and port < 65535:
                try:
                    self.rtcp = await open_udp(host, port + 1, on_datagram=self._on_rtcp_datagram)
                    self.rtp = rtp
                    assert rtp.transport is not None
                    fd = rtp.transport.get_extra_info("socket").fileno()
                    self._rtp_send_sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_DGRAM)
                    self._rtp_send_sock.setblocking(False)
                    return
                except NetError:
                    if requested:
                        rtp.close()
                        raise
            rtp.close()
            if requested:
                raise UnsupportedTransport(f"rtp_port {requested} must be even")
        raise RuntimeError("could not find a free UDP port pair for RTP/RTCP")

    async def close(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tick_task
        for session in list(self.sessions.values()):
            self._close_session(session, "server stopping")
        await self._tcp.close(grace=0.5)
        for ep in (self.rtp, self.rtcp):
            if ep is not None:
                ep.close()
        if self._rtp_send_sock is not None:
            self._rtp_send_sock.close()
            self._rtp_send_sock = None

    # --- connections -----------------------------------------------------------------------
    async def _handle(self, conn: Connection) -> None:
        ctx = ConnContext(conn)
        parser = MessageParser(max_header_bytes=self.settings.max_request_bytes,
                               max_body_bytes=self.settings.max_request_bytes)
        try:
            while True:
                timeout: float | None = self.settings.request_timeout
                if any(_streams_over_tcp(s) for s in ctx.sessions.values()):
                    # A dead TCP reader shows as a full socket, and the write deadline ends it.
                    timeout = PLAYING_TCP_READ_TIMEOUT
                elif ctx.sessions:
                    timeout = self.settings.session_timeout
                data = await conn.read(65536, timeout=timeout)
                if not data:
                    return
                try:
                    events = parser.feed(data)
                except ProtocolError as exc:
                    self.protocol_errors += 1
                    log.info("rtsp %s: %s", conn.peer, exc)
                    with contextlib.suppress(NetError):
                        await conn.send(Response(exc.status, Headers([("CSeq", "0")])).serialize())
                    return
                for event in events:
                    if isinstance(event, InterleavedFrame):
                        self._on_interleaved(ctx, event)
                    elif isinstance(event, Request):
                        self.requests += 1
                        response = await self._dispatch(ctx, event)
                        conn.write(response.serialize())
                        while ctx.after_response:
                            ctx.after_response.pop(0)()
                        if conn.transport.get_write_buffer_size() > self.settings.reader_buffer_bytes * 2:
                            await conn.drain()
        except NetError as exc:
            log.debug("rtsp %s: %s", conn.peer, exc)
        finally:
            for session in list(ctx.sessions.values()):
                self._close_session(session, "connection closed")

    async def _dispatch(self, ctx: ConnContext, req: Request) -> Response:
        headers = Headers([("CSeq", req.cseq or "0"), ("Server", "hivecast")])
        try:
            if req.method not in METHODS or req.method == "REDIRECT":
                raise RtspError(f"method {req.method} not implemented", status=501)
            handler = getattr(self, f"_on_{req.method.lower()}")
            response: Response = await handler(ctx, req)
        except RtspError as exc:
            log.debug("rtsp %s %s %s: %d %s", ctx.conn.peer, req.method, req.uri, exc.status, exc)
            response = Response(exc.status)
            if isinstance(exc, Unauthorized):
                # Digest only where this server knows the key itself; Basic and ?key= always work.
                if self._local_key is not None and self._local_key(stream_name(req.uri)) is not None:
                    nonce = self._nonces.issue(time.time())
                    response.headers.add("WWW-Authenticate", f'Digest realm="{REALM}", nonce="{nonce}"')
                response.headers.add("WWW-Authenticate", f'Basic realm="{REALM}"')
        for k, v in response.headers:
            headers.add(k, v)
        response.headers = headers
        return response

    def _session(self, ctx: ConnContext, req: Request, *, required: bool = True) -> ServerSession | None:
        value = req.headers.get("Session")
        if value is None:
            if required:
                raise SessionNotFound("request needs a Session header")
            return None
        sid = parse_header_params(value)[0]
        session = self.sessions.get(sid)
        if session is None or session.closed:
            raise SessionNotFound(f"no session {sid[:32]!r}")
        session.last_activity = time.monotonic()
        return session

    def _session_header(self, session: ServerSession) -> str:
        return f"{session.id};timeout={int(self.settings.session_timeout)}"

    def _new_session(self, ctx: ConnContext, name: str, kind: str) -> ServerSession:
        if len(self.sessions) >= self.settings.max_sessions:
            raise RtspError("too many sessions", status=503)
        if len(ctx.sessions) >= MAX_SESSIONS_PER_CONNECTION:
            raise RtspError("too many sessions on one connection", status=453)
        session = ServerSession(new_session_id(), ctx, name, kind=kind)
        self.sessions[session.id] = session
        ctx.sessions[session.id] = session
        return session

    # --- methods ---------------------------------------------------------------------------
    async def _on_options(self, ctx: ConnContext, req: Request) -> Response:
        with contextlib.suppress(SessionNotFound):
            self._session(ctx, req, required=False)
        return Response(200, Headers([("Public", PUBLIC)]))

    async def _on_get_parameter(self, ctx: ConnContext, req: Request) -> Response:
        self._session(ctx, req, required=False)
        return Response(200)

    async def _on_set_parameter(self, ctx: ConnContext, req: Request) -> Response:
        self._session(ctx, req, required=False)
        return Response(200)

    async def _on_describe(self, ctx: ConnContext, req: Request) -> Response:
        name = stream_name(req.uri)
        stream = self.registry.get(name)
        if stream is None:
            raise StreamNotFound(f"stream {name!r} is not live")
        body = describe(stream.tracks, name=name).serialize()
        base = req.uri.split("?", 1)[0].rstrip("/") + "/"
        return Response(200, Headers([("Content-Type", "application/sdp"), ("Content-Base", base)]), body)

    async def _on_announce(self, ctx: ConnContext, req: Request) -> Response:
        name = stream_name(req.uri)
        if not name:
            raise StreamNotFound("publish URL needs a stream name")
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            raise RtspError("ANNOUNCE needs an application/sdp body", status=415)
        try:
            announced = tracks_from_sdp(SessionDescription.parse(req.body))
        except SdpError as exc:
            raise RtspError(f"bad session description: {exc}", status=400) from None
        if not any(t.info is not None for t in announced):
            raise RtspError("no supported track (H.264, H.265, AAC or Opus) in the description", status=415)
        key = request_key(req)
        digest = parse_digest(req.headers.get("Authorization"))
        local = self._local_key(name) if self._local_key is not None else None
        if digest is not None and local is not None:
            if not digest_ok(digest, req.method, local, self._nonces, time.time()):
                raise Unauthorized("wrong stream key (digest)")
        elif not await self._authorize(name, key):
            if key is None:
                raise Unauthorized("publishing needs the stream key")
            raise Forbidden("wrong stream key")
        if self.registry.get(name) is not None and not self.settings.replace_publisher:
            raise StreamBusy(f"stream {name!r} already has a publisher")
        session = self._new_session(ctx, name, "record")
        session.state = next_state(session.state, "ANNOUNCE")
        session.announced = announced
        return Response(200, Headers([("Session", self._session_header(session))]))

    async def _on_setup(self, ctx: ConnContext, req: Request) -> Response:
        transport_header = req.headers.get("Transport")
        if not transport_header:
            raise UnsupportedTransport("SETUP needs a Transport header")
        specs = parse_transport(transport_header)
        session = self._session(ctx, req, required=False)
        name, control = split_track(req.uri)
        if session is not None and session.kind == "record":
            return self._setup_record(ctx, session, req, specs)
        stream = self.registry.get(name if session is None else session.name)
        if stream is None:
            raise StreamNotFound(f"stream {name!r} is not live")
        track = next((t for t in stream.tracks if control == control_for(t.id)), None)
        if track is None:
            raise StreamNotFound(f"no track {control!r} in stream {name!r}")
        if session is None:
            session = self._new_session(ctx, stream.name, "play")
        session.state = next_state(session.state, "SETUP")
        spec = specs[0]
        if session.tcp is not None and session.tcp != spec.tcp:
            raise UnsupportedTransport("all tracks of a session must use the same transport")
        rt = ReaderTrack(track)
        reply = TransportSpec(spec.protocol, ssrc=rt.ssrc, mode="play")
        if spec.tcp:
            channels = spec.interleaved or (2 * len(session.reader_tracks), 2 * len(session.reader_tracks) + 1)
            if channels[0] in ctx.channels:
                raise UnsupportedTransport("interleaved channel already in use")
            rt.channel = channels[0]
            ctx.channels[channels[0]] = (session, track.id, False)
            ctx.channels[channels[1]] = (session, track.id, True)
            reply.interleaved = channels
        else:
            if spec.client_port is None:
                raise UnsupportedTransport("UDP transport needs client_port")
            ip = ctx.conn.peer[0]
            rt.udp_rtp = (ip, spec.client_port[0])
            rt.udp_rtcp = (ip, spec.client_port[1])
            self._udp_rtcp_sources[rt.udp_rtcp] = (session, track.id)
            reply.client_port = spec.client_port
            reply.server_port = (self.rtp_port, self.rtp_port + 1)
        session.tcp = spec.tcp
        session.reader_tracks[track.id] = rt
        return Response(200, Headers([("Transport", reply.serialize()), ("Session", self._session_header(session))]))

    def _setup_record(self, ctx: ConnContext, session: ServerSession, req: Request,
                      specs: list[TransportSpec]) -> Response:
        _, control = split_track(req.uri)
        wanted = req.uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        track = None
        for t in session.announced:
            ctl = (t.control or "").rstrip("/").rsplit("/", 1)[-1]
            # ffmpeg appends the control after any query string (".../name?key=k/streamid=0").
            if ctl and (ctl in (wanted, control) or req.uri.rstrip("/").endswith("/" + ctl)):
                track = t
        if track is None:
            raise StreamNotFound(f"no announced track for {req.uri[:100]!r}")
        session.state = next_state(session.state, "SETUP")
        spec = specs[0]
        if session.tcp is not None and session.tcp != spec.tcp:
            raise UnsupportedTransport("all tracks of a session must use the same transport")
        reply = TransportSpec(spec.protocol, mode="record")
        if spec.tcp:
            channels = spec.interleaved or (2 * track.index, 2 * track.index + 1)
            ctx.channels[channels[0]] = (session, track.index, False)
            ctx.channels[channels[1]] = (session, track.index, True)
            reply.interleaved = channels
        else:
            if spec.client_port is None:
                raise UnsupportedTransport("UDP transport needs client_port")
            ip = ctx.conn.peer[0]
            self._udp_rtp_sources[(ip, spec.client_port[0])] = (session, track.index)
            self._udp_rtcp_sources[(ip, spec.client_port[1])] = (session, track.index)
            reply.client_port = spec.client_port
            reply.server_port = (self.rtp_port, self.rtp_port + 1)
        session.tcp = spec.tcp
        session.record_setup[track.index] = spec
        return Response(200, Headers([("Transport", reply.serialize()), ("Session", self._session_header(session))]))

    async def _on_record(self, ctx: ConnContext, req: Request) -> Response:
        session = self._session(ctx, req)
        assert session is not None
        if session.kind != "record":
            raise MethodNotValid("RECORD on a play session")
        session.state = next_state(session.state, "RECORD")
        if session.publisher is None:
            tracks: list[TrackInfo] = [t.info for t in session.announced
                                       if t.info is not None and t.index in session.record_setup]
            if not tracks:
                raise MethodNotValid("RECORD before any supported track was set up")
            try:
                session.publisher = self.registry.publish(session.name, tracks, source=f"rtsp {ctx.conn.peer[0]}",
                                                          replace=self.settings.replace_publisher)
            except StreamBusyError:
                raise StreamBusy(f"stream {session.name!r} already has a publisher") from None
            # Replacing (rtsp.replace_publisher): the previous publisher's session ends here.
            for other in [s for s in self.sessions.values()
                          if s is not session and s.kind == "record" and s.name == session.name and s.publisher]:
                other.publisher = None
                self._close_session(other, "replaced by a new publisher", abort=True)
            for info in tracks:
                session.receivers[info.id] = TrackReceiver(info, session.clock, reorder=not session.tcp)
            stream = session.publisher.stream
            self._count_readers(stream.name)
        return Response(200, Headers([("Session", self._session_header(session))]))

    async def _on_play(self, ctx: ConnContext, req: Request) -> Response:
        session = self._session(ctx, req)
        assert session is not None
        if session.kind != "play":
            raise MethodNotValid("PLAY on a record session")
        if not session.reader_tracks:
            raise MethodNotValid("PLAY before SETUP")
        stream = self.registry.get(session.name)
        if stream is None:
            raise StreamNotFound(f"stream {session.name!r} is not live")
        was_playing = session.state == State.PLAYING
        session.state = next_state(session.state, "PLAY")
        relay = self.relays.get(session.name)
        if relay is None or relay.stream is not stream:
            if relay is not None:
                relay.close()
            relay = self.relays[session.name] = StreamRelay(stream, mtu=self.settings.mtu)
            self._count_readers(stream.name)
        if session.reader is None:
            session.reader = self._relay_reader(session)
        base = req.uri.split("?", 1)[0].rstrip("/")
        rtp_info = ",".join(f"url={base}/{control_for(rt.track.id)};seq={rt.seq}"
                            for rt in session.reader_tracks.values())
        if not was_playing:
            reader = session.reader

            def start_reader() -> None:
                if not session.closed and session.state == State.PLAYING:
                    relay.add_reader(reader)

            ctx.after_response.append(start_reader)
        return Response(200, Headers([("Range", "npt=0.000-"), ("RTP-Info", rtp_info),
                                      ("Session", self._session_header(session))]))

    def _relay_reader(self, session: ServerSession) -> RelayReader:
        def stuck() -> None:
            self._close_session(session, "reader too slow", abort=True)

        def send_rtcp(rt: ReaderTrack, data: bytes) -> None:
            self._send_rtcp(session, rt.channel + 1, rt.udp_rtcp, data)

        return RelayReader(
            session.id, session.reader_tracks,
            udp_sock=self._rtp_send_sock,
            tcp=session.ctx.conn.transport if session.tcp else None,
            max_buffer=self.settings.reader_buffer_bytes, write_timeout=self.settings.write_timeout,
            on_stuck=stuck, send_rtcp=send_rtcp)

    async def _on_pause(self, ctx: ConnContext, req: Request) -> Response:
        session = self._session(ctx, req)
        assert session is not None
        if session.kind != "play":
            raise MethodNotValid("PAUSE is for play sessions")
        session.state = next_state(session.state, "PAUSE")
        relay = self.relays.get(session.name)
        if relay is not None:
            relay.remove_reader(session.id)
        return Response(200, Headers([("Session", self._session_header(session))]))

    async def _on_teardown(self, ctx: ConnContext, req: Request) -> Response:
        session = self._session(ctx, req)
        assert session is not None
        self._close_session(session, "teardown")
        return Response(200)

    # --- media in --------------------------------------------------------------------------
    def _on_interleaved(self, ctx: ConnContext, frame: InterleavedFrame) -> None:
        entry = ctx.channels.get(frame.channel)
        if entry is None:
            return
        session, track_id, rtcp = entry
        self._media_in(session, track_id, frame.data, rtcp)

    def _on_rtp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        entry = self._udp_rtp_sources.get(addr)
        if entry is not None:
            self._media_in(entry[0], entry[1], data, False)

    def _on_rtcp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        entry = self._udp_rtcp_sources.get(addr)
        if entry is not None:
            self._media_in(entry[0], entry[1], data, True)

    def _media_in(self, session: ServerSession, track_id: int, data: bytes, rtcp: bool) -> None:
        if session.closed:
            return
        now = time.monotonic()
        session.last_activity = now
        if rtcp or is_rtcp(data):
            try:
                packets = parse_compound(data)
            except MalformedPacket:
                return
            if session.kind == "play" and session.reader is not None:
                session.reader.on_rtcp(packets, time.time())
            elif session.kind == "record":
                receiver = session.receivers.get(track_id)
                if receiver is not None:
                    receiver.on_rtcp(packets, now, time.time())
            return
        if session.state != State.RECORDING or session.publisher is None:
            return
        receiver = session.receivers.get(track_id)
        if receiver is None:
            return
        for au in receiver.on_rtp(data, now):
            session.publisher.send(au)

    # --- sessions --------------------------------------------------------------------------
    def _count_readers(self, name: str) -> None:
        stream = self.registry.get(name)
        if stream is not None:
            stream.extra_readers = lambda: self._reader_count(name)

    def _reader_count(self, name: str) -> int:
        relay = self.relays.get(name)
        return len(relay.readers) if relay is not None else 0

    def _close_session(self, session: ServerSession, why: str, *, abort: bool = False) -> None:
        if session.closed:
            return
        session.closed = True
        log.debug("rtsp session %s (%s %s) closed: %s", session.id, session.kind, session.name, why)
        self.sessions.pop(session.id, None)
        session.ctx.sessions.pop(session.id, None)
        for ch, (s, _, _) in list(session.ctx.channels.items()):
            if s is session:
                del session.ctx.channels[ch]
        for table in (self._udp_rtp_sources, self._udp_rtcp_sources):
            for addr, (s, _) in list(table.items()):
                if s is session:
                    del table[addr]
        if session.kind == "play":
            relay = self.relays.get(session.name)
            if relay is not None:
                relay.remove_reader(session.id)
        elif session.publisher is not None:
            publisher, session.publisher = session.publisher, None
            if publisher.active:
                publisher.close()
            self._end_readers(session.name)
        if abort or (why == "session timeout" and not session.ctx.sessions):
            session.ctx.conn.abort()

    def _end_readers(self, name: str) -> None:
        """The stream went offline: send BYE to its readers and close them."""
        relay = self.relays.pop(name, None)
        if relay is None:
            return
        relay.close()
        for session in [s for s in self.sessions.values() if s.kind == "play" and s.name == name]:
            self._send_bye(session)
            self._close_session(session, "stream ended", abort=True)

    def _send_bye(self, session: ServerSession) -> None:
        for rt in session.reader_tracks.values():
            self._send_rtcp(session, rt.channel + 1, rt.udp_rtcp, Bye([rt.ssrc]).serialize())

    def _send_rtcp(self, session: ServerSession, channel: int, addr: tuple[str, int] | None, data: bytes) -> None:
        try:
            if session.tcp:
                transport = session.ctx.conn.transport
                if not transport.is_closing() and transport.get_write_buffer_size() < self.settings.reader_buffer_bytes:
                    transport.write(interleaved(channel, data))
            elif addr is not None and self.rtcp is not None and self.rtcp.transport is not None:
                self.rtcp.transport.sendto(data, addr)
        except (OSError, RuntimeError) as exc:
            log.debug("rtcp send to session %s failed: %s", session.id, exc)

    # --- the tick: RTCP reports, timeouts, QoS ----------------------------------------------
    async def _tick_loop(self) -> None:
        interval = self.settings.rtcp_interval
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick(time.monotonic(), time.time())
            except Exception:
                log.exception("rtsp tick failed")

    def tick(self, mono: float, wall: float) -> None:
        timeout = self.settings.session_timeout
        for session in list(self.sessions.values()):
            if mono - session.last_activity > timeout and not _streams_over_tcp(session):
                self._close_session(session, "session timeout", abort=True)
        # Streams that went offline under their readers (demo stopped, pulled source lost).
        for name, relay in list(self.relays.items()):
            if relay.stream.state != "live" or self.registry.get(name) is not relay.stream:
                self._end_readers(name)
        per_stream: dict[str, dict[str, Any]] = {}
        for session in list(self.sessions.values()):
            if session.kind == "record" and session.publisher is not None:
                figures: dict[str, Any] = {}
                for track_id, receiver in session.receivers.items():
                    for au in receiver.poll(mono):
                        session.publisher.send(au)
                    spec = session.record_setup.get(track_id)
                    rr = receiver.receiver_report(session.ssrc, mono)
                    if rr is not None and spec is not None:
                        channel = (spec.interleaved or (0, 1))[1]
                        addr = (session.ctx.conn.peer[0], spec.client_port[1]) if spec.client_port else None
                        self._send_rtcp(session, channel, addr, rr)
                    figures[receiver.info.codec] = receiver.qos(mono)
                bitrate = sum(f["bitrate_bps"] for f in figures.values())
                session.publisher.update_qos(bitrate_bps=bitrate, publisher=figures)
                per_stream.setdefault(session.name, {}).update(bitrate_bps=bitrate, publisher=figures)
            elif session.kind == "play" and session.reader is not None and session.state == State.PLAYING:
                for rt, sr in session.reader.sender_reports(wall):
                    self._send_rtcp(session, rt.channel + 1, rt.udp_rtcp, sr)
                per_stream.setdefault(session.name, {}).setdefault("readers", []).append(session.reader.qos(mono))
        # Every live stream reports once a tick, whoever publishes it (RTSP, pull, demo).
        seen: dict[str, tuple[int, float]] = {}
        for name in self.registry.names():
            stream = self.registry.get(name)
            if stream is None:
                continue
            figures = per_stream.get(name, {})
            readers = figures.get("readers", [])
            last = self._last_bytes.get(name)
            seen[name] = (stream.bytes, mono)
            if "bitrate_bps" not in figures and last is not None and mono > last[1] and stream.bytes >= last[0]:
                stream.qos["bitrate_bps"] = round((stream.bytes - last[0]) * 8 / (mono - last[1]))
            summary = {
                "rtsp_readers": len(readers),
                "reader_loss_max": max((r["loss"] for r in readers), default=0.0),
                "reader_dropped": sum(r["dropped"] for r in readers),
                "reader_rtt_ms_max": max((r["rtt_ms"] or 0.0 for r in readers), default=0.0),
            }
            stream.qos.update(summary)
            stream.qos["rtsp_reader_sessions"] = readers[:100]
            self.registry.report_qos(name, {**summary, "readers": stream.readers,
                                            "bitrate_bps": stream.qos.get("bitrate_bps", 0)})
        self._last_bytes = seen

    def reader_qos(self, name: str) -> list[dict[str, Any]]:
        """Per-reader QoS of a stream (loss, jitter, RTT from their RRs; bitrate and drops from us)."""
        info = self.registry.info(name) or {}
        return list(info.get("qos", {}).get("rtsp_reader_sessions", []))


def _streams_over_tcp(session: ServerSession) -> bool:
    """A playing TCP session proves it is alive by taking our media; it needs no keep-alive."""
    return bool(session.tcp) and session.kind == "play" and session.state == State.PLAYING
