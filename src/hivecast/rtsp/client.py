"""RTSP client (asyncio adapter): play a remote stream over TCP interleaved, and pull it into the registry.

`RtspClient` speaks the methods; `PullSource` keeps one remote stream published locally under a
name and `PushTarget` publishes a local one to a remote server, each a `Reconnecting`
(hivecast.net): reconnecting with exponential back-off (with jitter) when the peer goes away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from hivecast.media.live import LiveRegistry, Publisher, StreamBusyError
from hivecast.net import Connection, NetError, UdpEndpoint, connect, open_udp
from hivecast.net.reconnect import Reconnecting
from hivecast.rtp import is_rtcp
from hivecast.rtp.rtcp import parse_compound
from hivecast.rtsp.auth import parse_digest
from hivecast.rtsp.describe import AnnouncedTrack, tracks_from_sdp
from hivecast.rtsp.errors import ClientError, ProtocolError
from hivecast.rtsp.ingest import StreamClock, TrackReceiver
from hivecast.rtsp.message import (
    Headers,
    InterleavedFrame,
    MessageParser,
    Request,
    Response,
    parse_header_params,
)
from hivecast.rtsp.sdp import SessionDescription, resolve_control
from hivecast.rtsp.transport import TransportSpec, parse_transport

log = logging.getLogger(__name__)

FrameHandler = Callable[[InterleavedFrame], None]


@dataclass(frozen=True, slots=True)
class RtspUrl:
    host: str
    port: int
    url: str  # without credentials
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> RtspUrl:
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise ClientError(f"not an rtsp:// URL: {url[:100]!r}")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        clean = urlunsplit(("rtsp", netloc, parts.path, parts.query, ""))
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, parts.port or 554, clean, user, password)


class RtspClient:
    def __init__(self, url: str, *, timeout: float = 10.0, on_frame: FrameHandler | None = None,
                 max_message_bytes: int = 1024 * 1024) -> None:
        self.target = RtspUrl.parse(url)
        self.timeout = timeout
        self.on_frame = on_frame
        self._parser = MessageParser(max_header_bytes=64 * 1024, max_body_bytes=max_message_bytes)
        self._conn: Connection | None = None
        self._cseq = 0
        self._pending: asyncio.Future[Response] | None = None
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.session: str | None = None
        self.session_timeout = 60.0
        self.content_base: str | None = None
        self.closed = asyncio.Event()
        self._digest: dict[str, str] | None = None
        self._nc = 0

    async def connect(self) -> None:
        self._conn = await connect(self.target.host, self.target.port, timeout=self.timeout)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name="rtsp-client-read")

    async def _read_loop(self) -> None:
        assert self._conn is not None
        error: Exception = ClientError("connection closed")
        try:
            while True:
                data = await self._conn.read(65536, timeout=max(self.session_timeout * 2, self.timeout))
                if not data:
                    break
                for event in self._parser.feed(data):
                    if isinstance(event, InterleavedFrame):
                        if self.on_frame is not None:
                            self.on_frame(event)
                    elif isinstance(event, Response) and self._pending is not None and not self._pending.done():
                        self._pending.set_result(event)
                    # Requests from the server (rare: OPTIONS keep-alive, ANNOUNCE) are ignored.
        except (NetError, ProtocolError) as exc:
            error = ClientError(str(exc))
        finally:
            if self._pending is not None and not self._pending.done():
                self._pending.set_exception(error)
            self.closed.set()

    def authorization(self, method: str, uri: str) -> str | None:
        """The Authorization header: Digest once challenged (RFC 2617, as RTSP uses it), else Basic."""
        user, password = self.target.username, self.target.password or ""
        if user is None:
            return None
        d = self._digest
        if d is None:
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        def md5(text: str) -> str:
            return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

        realm, nonce = d.get("realm", ""), d.get("nonce", "")
        ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
        fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in [q.strip() for q in d.get("qop", "").split(",")]:
            self._nc += 1
            nc, cnonce = f"{self._nc:08x}", secrets.token_hex(8)
            fields += [f'response="{md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")}"', "qop=auth", f"nc={nc}",
                       f'cnonce="{cnonce}"']
        else:
            fields.append(f'response="{md5(f"{ha1}:{nonce}:{ha2}")}"')
        if "opaque" in d:
            fields.append(f'opaque="{d["opaque"]}"')
        return "Digest " + ", ".join(fields)

    async def _exchange(self, method: str, uri: str, headers: dict[str, str] | None, body: bytes) -> Response:
        if self._conn is None or self.closed.is_set():
            raise ClientError("not connected")
        async with self._lock:
            self._cseq += 1
            h = Headers([("CSeq", str(self._cseq)), ("User-Agent", "hivecast")])
            if self.session is not None:
                h["Session"] = self.session
            auth = self.authorization(method, uri)
            if auth is not None:
                h["Authorization"] = auth
            for k, v in (headers or {}).items():
                h[k] = v
            self._pending = asyncio.get_running_loop().create_future()
            self._conn.write(Request(method, uri, h, body).serialize())
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._pending
            except TimeoutError:
                raise ClientError(f"{method}: no response within {self.timeout} s") from None
            finally:
                self._pending = None

    async def request(self, method: str, uri: str | None = None, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> Response:
        uri = uri or self.target.url
        response = await self._exchange(method, uri, headers, body)
        if response.status == 401 and self.target.username is not None and self._digest is None:
            for name, value in response.headers:
                challenge = parse_digest(value) if name.lower() == "www-authenticate" else None
                if challenge is not None:
                    self._digest = challenge
                    response = await self._exchange(method, uri, headers, body)
                    break
        session = response.headers.get("Session")
        if session:
            sid, params = parse_header_params(session)
            self.session = sid
            with contextlib.suppress(ValueError):
                self.session_timeout = float(params.get("timeout", self.session_timeout))
        return response

    async def checked(self, method: str, uri: str | None = None, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> Response:
        response = await self.request(method, uri, headers, body)
        if response.status != 200:
            raise ClientError(f"{method} {uri or self.target.url}: {response.status} {response.reason}")
        return response

    async def describe(self) -> SessionDescription:
        response = await self.checked("DESCRIBE", headers={"Accept": "application/sdp"})
        self.content_base = response.headers.get("Content-Base") or response.headers.get("Content-Location")
        return SessionDescription.parse(response.body)

    def track_url(self, control: str | None) -> str:
        base = self.content_base or self.target.url
        return resolve_control(base, control)

    async def setup_tcp(self, control: str | None, channel: int) -> TransportSpec:
        response = await self.checked("SETUP", self.track_url(control), headers={
            "Transport": f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"})
        return parse_transport(response.headers.get("Transport") or "RTP/AVP/TCP")[0]

    async def send_frame(self, channel: int, data: bytes) -> None:
        self.write_frame(channel, data)

    def write_frame(self, channel: int, data: bytes) -> None:
        if self._conn is not None and not self.closed.is_set():
            with contextlib.suppress(NetError):
                self._conn.write(InterleavedFrame(channel, data).serialize())

    @property
    def local_host(self) -> str:
        return self._conn.local[0] if self._conn is not None else "127.0.0.1"

    @property
    def peer_host(self) -> str:
        return self._conn.peer[0] if self._conn is not None else self.target.host

    async def close(self) -> None:
        if self._conn is not None:
            if self.session is not None and not self.closed.is_set():
                with contextlib.suppress(ClientError, NetError):
                    async with asyncio.timeout(1.0):
                        await self.request("TEARDOWN")
            await self._conn.close(timeout=1.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


class PullSource(Reconnecting):
    """Keep `url` published locally as `name`: DESCRIBE, SETUP, PLAY; reconnect on loss.

    Media comes over TCP interleaved (default) or RTP/AVP over UDP (`transport="udp"`), with an
    RR per track every second either way.
    """

    kind = "pull"
    expected = (ClientError, NetError, StreamBusyError, ValueError)

    def __init__(self, url: str, name: str, registry: LiveRegistry, *, min_backoff: float = 1.0,
                 max_backoff: float = 30.0, stall_timeout: float = 10.0, transport: str = "tcp") -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError("transport must be tcp or udp")
        super().__init__(name, url, min_backoff=min_backoff, max_backoff=max_backoff, jitter=True)
        self.transport = transport
        self.registry = registry
        self.stall_timeout = stall_timeout
        self.connected = 0

    async def attempt(self) -> None:
        self.state = "connecting"
        await self.pull_once()

    async def pull_once(self) -> None:
        """One connection's worth of pulling; returns or raises when the source is lost."""
        receivers: dict[int, tuple[TrackReceiver, bool]] = {}  # channel -> (receiver, is_rtcp)
        report_to: list[tuple[TrackReceiver, Callable[[bytes], None]]] = []
        endpoints: list[UdpEndpoint] = []
        publisher: Publisher | None = None
        last_media = time.monotonic()

        def media_in(receiver: TrackReceiver, rtcp: bool, data: bytes) -> None:
            nonlocal last_media
            if publisher is None:
                return
            now = time.monotonic()
            if rtcp or is_rtcp(data):
                with contextlib.suppress(ValueError):
                    receiver.on_rtcp(parse_compound(data), now, time.time())
                return
            last_media = now
            self.bytes += len(data)
            for au in receiver.on_rtp(data, now):
                publisher.send(au)

        def on_frame(frame: InterleavedFrame) -> None:
            entry = receivers.get(frame.channel)
            if entry is not None:
                media_in(entry[0], entry[1], frame.data)

        client = RtspClient(self.url, on_frame=on_frame)
        try:
            await client.connect()
            sd = await client.describe()
            tracks: list[AnnouncedTrack] = [t for t in tracks_from_sdp(sd) if t.info is not None]
            if not tracks:
                raise ClientError("source has no H.264, H.265, AAC or Opus track")
            clock = StreamClock()
            channel = 0
            for t in tracks:
                assert t.info is not None
                receiver = TrackReceiver(t.info, clock, reorder=self.transport == "udp")
                if self.transport == "udp":
                    await self._setup_udp(client, t, receiver, media_in, endpoints, report_to)
                    continue
                spec = await client.setup_tcp(t.control, channel)
                ch = spec.interleaved[0] if spec.interleaved else channel
                receivers[ch] = (receiver, False)
                receivers[ch + 1] = (receiver, True)
                report_to.append((receiver, functools.partial(client.write_frame, ch + 1)))
                channel += 2
            await client.checked("PLAY", client.content_base or client.target.url, headers={"Range": "npt=0.000-"})
            publisher = self.registry.publish(self.name, [t.info for t in tracks if t.info is not None],
                                              source=f"pull {client.target.url}")
            self.connected += 1
            self.running()
            log.info("pulling %s into %s over %s", client.target.url, self.name, self.transport)
            keepalive = max(1.0, min(client.session_timeout / 2, 20.0))
            next_keepalive = time.monotonic() + keepalive
            ssrc = random.getrandbits(32)
            while not client.closed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await client.closed.wait()
                now = time.monotonic()
                if now - last_media > self.stall_timeout:
                    raise ClientError("source stalled: no media")
                for receiver, send in report_to:
                    for au in receiver.poll(now):
                        publisher.send(au)
                    rr = receiver.receiver_report(ssrc, now)
                    if rr is not None:
                        send(rr)
                    publisher.update_qos(**{f"pull_{receiver.info.codec}": receiver.qos(now)})
                if now >= next_keepalive:
                    next_keepalive = now + keepalive
                    await client.checked("GET_PARAMETER")
            raise ClientError("source closed the connection")
        finally:
            if publisher is not None:
                publisher.close()
            await client.close()
            for ep in endpoints:
                ep.close()

    @staticmethod
    async def _setup_udp(client: RtspClient, track: AnnouncedTrack, receiver: TrackReceiver,
                         media_in: Callable[[TrackReceiver, bool, bytes], None], endpoints: list[UdpEndpoint],
                         report_to: list[tuple[TrackReceiver, Callable[[bytes], None]]]) -> None:
        source = client.peer_host

        def rtp_in(data: bytes, addr: tuple[str, int]) -> None:
            if addr[0] == source:
                media_in(receiver, False, data)

        def rtcp_in(data: bytes, addr: tuple[str, int]) -> None:
            if addr[0] == source:
                media_in(receiver, True, data)

        rtp = await open_udp(client.local_host, 0, on_datagram=rtp_in)
        endpoints.append(rtp)
        rtcp = await open_udp(client.local_host, 0, on_datagram=rtcp_in)
        endpoints.append(rtcp)
        response = await client.checked("SETUP", client.track_url(track.control), headers={
            "Transport": f"RTP/AVP;unicast;client_port={rtp.port}-{rtcp.port}"})
        spec = parse_transport(response.headers.get("Transport") or "RTP/AVP")[0]
        if spec.tcp or spec.server_port is None:
            raise ClientError("server did not accept RTP over UDP")
        target = (source, spec.server_port[1])
        # A first datagram towards the server opens the way through NATs and firewalls.
        with contextlib.suppress(NetError):
            rtp.send(b"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", (source, spec.server_port[0]))

        def send_rr(data: bytes) -> None:
            with contextlib.suppress(NetError):
                rtcp.send(data, target)

        report_to.append((receiver, send_rr))


class PushTarget(Reconnecting):
    """Publish local stream `name` to a remote RTSP server (ANNOUNCE, SETUP with mode=record over TCP
    interleaved, RECORD), re-publishing while the local stream lives; reconnects with back-off."""

    kind = "push"
    expected = (ClientError, NetError, ValueError)

    def __init__(self, name: str, url: str, registry: LiveRegistry, *, mtu: int = 1200,
                 min_backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        super().__init__(name, url, min_backoff=min_backoff, max_backoff=max_backoff, jitter=True)
        self.registry = registry
        self.mtu = mtu
        self.connected = 0
        self.sent_units = 0

    async def wait_ready(self) -> None:
        self.state = "waiting"
        while self.registry.get(self.name) is None:
            await asyncio.sleep(0.5)  # nothing to push yet

    async def attempt(self) -> None:
        self.state = "connecting"
        await self.push_once()

    async def push_once(self) -> None:
        from hivecast.media.live import StreamEnded, StreamNotLiveError
        from hivecast.rtsp.describe import control_for, describe
        from hivecast.rtsp.relay import RTP_HEADER, StreamRelay

        try:
            reader = self.registry.subscribe(self.name)
        except StreamNotLiveError:
            return
        stream = reader.stream
        relay = StreamRelay(stream, mtu=self.mtu)
        relay.close()  # used only for its packetizers and timestamp offsets, not as a sink
        client = RtspClient(self.url)
        try:
            await client.connect()
            sdp = describe(stream.tracks, name=self.name).serialize()
            await client.checked("ANNOUNCE", headers={"Content-Type": "application/sdp"}, body=sdp)
            channels: dict[int, int] = {}
            for i, track in enumerate(stream.tracks):
                response = await client.checked(
                    "SETUP", client.target.url.rstrip("/") + "/" + control_for(track.id),
                    headers={"Transport": f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1};mode=record"})
                spec = parse_transport(response.headers.get("Transport") or "RTP/AVP/TCP")[0]
                channels[track.id] = spec.interleaved[0] if spec.interleaved else 2 * i
            await client.checked("RECORD", headers={"Range": "npt=0.000-"})
            self.connected += 1
            self.running()
            log.info("pushing %s to %s", self.name, client.target.url)
            ssrcs = {t.id: random.getrandbits(32) for t in stream.tracks}
            seqs = {t.id: random.getrandbits(16) for t in stream.tracks}
            while not client.closed.is_set():
                try:
                    async with asyncio.timeout(5.0):
                        au = await reader.get()
                except StreamEnded:
                    return
                except TimeoutError:
                    raise ClientError("local stream stalled") from None
                if au.track not in channels:
                    continue
                out = relay.prepare(au)
                seq = seqs[au.track]
                for b1, payload in out.items:
                    client.write_frame(channels[au.track],
                                       RTP_HEADER.pack(0x80, b1, seq, out.timestamp, ssrcs[au.track]) + payload)
                    seq = (seq + 1) & 0xFFFF
                seqs[au.track] = seq
                self.sent_units += 1
                self.bytes += out.size
            raise ClientError("server closed the connection")
        finally:
            reader.close()
            await client.close()
