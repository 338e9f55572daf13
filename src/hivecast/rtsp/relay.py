"""Fan-out of one live stream to its RTSP readers: packetize once, send to each with its own SSRC/seq.

Each access unit is packetized once per stream (RFC 6184, 7798, 3640, 7587); each reader gets the same
payload bytes behind a 12-byte header carrying its own sequence number and SSRC. Readers never slow
the publisher: a UDP reader gets packets while the socket takes them; a TCP reader whose unsent
bytes pass its limit loses access units, counted, and resumes at the next keyframe (GOP-aware drop);
one that stays over the limit longer than the write deadline is closed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hivecast.media.live import AccessUnit, LiveStream, TrackInfo
from hivecast.rtp import opus
from hivecast.rtp.aac import AacPacketizer
from hivecast.rtp.h264 import H264Packetizer, annexb_split
from hivecast.rtp.h265 import H265Packetizer
from hivecast.rtp.rtcp import (
    ReceiverReport,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
)
from hivecast.rtp.stats import round_trip_time
from hivecast.rtsp.describe import AUDIO_PT, OPUS_PT, VIDEO_PT

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
TCP_RTP_HEADER = struct.Struct("!BBHBBHII")  # '$', channel, length, then the RTP header


@dataclass(frozen=True, slots=True)
class OutPackets:
    """One access unit ready for every reader: (second header byte, payload) per packet."""

    items: list[tuple[int, bytes]]
    size: int
    timestamp: int


@dataclass(slots=True)
class ReaderTrack:
    """One track of one reader: its fresh SSRC and sequence, where it goes, and what it reports."""

    track: TrackInfo
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    udp_rtp: tuple[str, int] | None = None
    udp_rtcp: tuple[str, int] | None = None
    channel: int = 0  # interleaved RTP channel (RTCP on channel + 1)
    packets: int = 0
    octets: int = 0
    last_ts: int | None = None
    last_sent: float = 0.0
    fraction_lost: float = 0.0
    lost: int = 0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None


class RelayReader:
    def __init__(self, session_id: str, tracks: dict[int, ReaderTrack], *,
                 udp_sock: socket.socket | None = None,
                 tcp: asyncio.WriteTransport | None = None, max_buffer: int = 4 * 1024 * 1024,
                 write_timeout: float = 10.0, on_stuck: Callable[[], None] | None = None,
                 send_rtcp: Callable[[ReaderTrack, bytes], None] | None = None) -> None:
        self.session_id = session_id
        self.send_rtcp = send_rtcp
        # Set by the relay: the RTP timestamp of a track at a wall-clock instant (one media clock).
        self.rtp_time: Callable[[int, float], int] | None = None
        self.tracks = tracks
        self.udp_sock = udp_sock
        self.udp_drops = 0
        self.tcp = tcp
        self.max_buffer = max_buffer
        self.write_timeout = write_timeout
        self.on_stuck = on_stuck
        self.has_video = any(t.track.kind == "video" for t in tracks.values())
        self.need_keyframe = self.has_video
        self.dropped = 0
        self.bytes_sent = 0
        self._over_since: float | None = None
        self._rate_bytes = 0
        self._rate_time: float | None = None
        self.bitrate = 0.0

    def _buffered(self) -> int:
        if self.tcp is not None:
            if self.tcp.is_closing():
                raise ConnectionError("reader's connection is closed")
            return self.tcp.get_write_buffer_size()
        return 0  # UDP: the kernel drops for us; nothing queues in user space

    def send(self, rt: ReaderTrack, out: OutPackets, au: AccessUnit) -> None:
        if self.need_keyframe:
            if not (au.keyframe and rt.track.kind == "video"):
                self.dropped += 1
                return
            self.need_keyframe = False
        if self._buffered() > self.max_buffer:
            self.dropped += 1
            self.need_keyframe = self.has_video
            now = time.monotonic()
            if self._over_since is None:
                self._over_since = now
            elif now - self._over_since > self.write_timeout and self.on_stuck is not None:
                self.on_stuck()
            return
        self._over_since = None
        seq, ssrc, ts = rt.seq, rt.ssrc, out.timestamp
        n = len(out.items)
        # The hot loop: one header pack, one concatenation and one syscall per packet per reader.
        if self.tcp is not None:
            pack, ch = TCP_RTP_HEADER.pack, rt.channel
            self.tcp.writelines([pack(0x24, ch, 12 + len(payload), 0x80, b1, (seq + i) & 0xFFFF, ts, ssrc) + payload
                                 for i, (b1, payload) in enumerate(out.items)])
        elif self.udp_sock is not None and rt.udp_rtp is not None:
            addr, sendto, pack = rt.udp_rtp, self.udp_sock.sendto, RTP_HEADER.pack
            try:
                if seq + n <= 0xFFFF:
                    for b1, payload in out.items:
                        sendto(pack(0x80, b1, seq, ts, ssrc) + payload, addr)
                        seq += 1
                else:
                    for b1, payload in out.items:
                        sendto(pack(0x80, b1, seq & 0xFFFF, ts, ssrc) + payload, addr)
                        seq += 1
            except BlockingIOError:
                self.udp_drops += 1  # socket full: the rest of this access unit is lost to this reader
            except OSError:
                pass  # ICMP-reported errors and the like: the session timeout handles a vanished reader
        rt.seq = (rt.seq + n) & 0xFFFF
        rt.packets += n
        rt.octets += out.size
        rt.last_ts = ts
        rt.last_sent = au.arrival or time.monotonic()
        wire = out.size + 12 * n
        self.bytes_sent += wire
        self._rate_bytes += wire

    def sender_reports(self, wall: float, *, initial: bool = False) -> list[tuple[ReaderTrack, bytes]]:
        out = []
        for rt in self.tracks.values():
            if (rt.last_ts is None and not initial) or self.rtp_time is None:
                continue
            ts = self.rtp_time(rt.track.id, wall)
            sr = SenderReport(rt.ssrc, ntp_from_unix(wall), ts, rt.packets, rt.octets)
            sdes = SourceDescription([SdesChunk(rt.ssrc, [(1, b"hivecast")])])
            out.append((rt, sr.serialize() + sdes.serialize()))
        return out

    def on_rtcp(self, packets: list[RtcpPacket], wall: float) -> None:
        for p in packets:
            if not isinstance(p, ReceiverReport | SenderReport):
                continue
            for block in p.reports:
                for rt in self.tracks.values():
                    if block.ssrc == rt.ssrc:
                        rt.fraction_lost = block.fraction_lost / 256
                        rt.lost = block.packets_lost
                        rt.jitter_ms = round(block.jitter / rt.track.clock_rate * 1000, 3)
                        rtt = round_trip_time(block, wall)
                        rt.rtt_ms = round(rtt * 1000, 3) if rtt is not None else None

    def qos(self, mono: float) -> dict[str, object]:
        if self._rate_time is not None and mono > self._rate_time:
            self.bitrate = self._rate_bytes * 8 / (mono - self._rate_time)
        self._rate_time = mono
        self._rate_bytes = 0
        rtts = [t.rtt_ms for t in self.tracks.values() if t.rtt_ms is not None]
        return {
            "session": self.session_id,
            "transport": "tcp" if self.tcp is not None else "udp",
            "bitrate_bps": round(self.bitrate),
            "dropped": self.dropped,
            "loss": max((t.fraction_lost for t in self.tracks.values()), default=0.0),
            "lost": sum(t.lost for t in self.tracks.values()),
            "jitter_ms": max((t.jitter_ms for t in self.tracks.values()), default=0.0),
            "rtt_ms": max(rtts) if rtts else None,
        }


class StreamRelay:
    """The RTSP side of one live stream: a sink on the LiveStream feeding every playing reader."""

    def __init__(self, stream: LiveStream, *, mtu: int = 1200) -> None:
        self.stream = stream
        self.mtu = mtu
        self._h264 = H264Packetizer(mtu)
        self._aac = AacPacketizer(mtu)
        self._h265 = H265Packetizer(mtu)
        self._offsets = {t.id: random.getrandbits(32) for t in stream.tracks}
        # Wall-clock instant of media time zero, so SRs of every track map to one clock (lip sync).
        self._epoch_wall = time.time() - (time.monotonic() - stream.started_at)
        # AV1/VP9 have no RTP packetizer here: describe() leaves them out, and so does the relay.
        self._tracks = {t.id: t for t in stream.tracks if t.codec in ("h264", "h265", "aac", "opus")}
        self.readers: dict[str, RelayReader] = {}
        self._remove_sink: Callable[[], None] | None = stream.add_sink(self.on_access_unit)

    def close(self) -> None:
        if self._remove_sink is not None:
            self._remove_sink()
            self._remove_sink = None
        self.readers.clear()

    def prepare(self, au: AccessUnit) -> OutPackets:
        packets, pt, ts = self.packetize(au)
        items = [((0x80 if marker else 0) | pt, payload) for payload, marker in packets]
        return OutPackets(items, sum(len(p) for _, p in items), ts)

    def packetize(self, au: AccessUnit) -> tuple[list[tuple[bytes, bool]], int, int]:
        """(payloads with markers, payload type, RTP timestamp) for one access unit."""
        ts = (au.pts + self._offsets.get(au.track, 0)) & 0xFFFFFFFF
        if au.codec == "h264":
            return self._h264.packetize(annexb_split(au.data)), VIDEO_PT, ts
        if au.codec == "h265":
            return self._h265.packetize(annexb_split(au.data)), VIDEO_PT, ts
        if au.codec == "aac":
            return self._aac.packetize(au.data), AUDIO_PT, ts
        return opus.packetize(au.data), OPUS_PT, ts

    def on_access_unit(self, au: AccessUnit) -> None:
        if not self.readers or au.track not in self._tracks:
            return
        out = self.prepare(au)
        if not out.items:
            return
        for reader in list(self.readers.values()):
            rt = reader.tracks.get(au.track)
            if rt is not None:
                self._send(reader, rt, out, au)

    def _send(self, reader: RelayReader, rt: ReaderTrack, out: OutPackets, au: AccessUnit) -> None:
        """One reader's failure (a transport closed under us) must never reach the publisher."""
        try:
            reader.send(rt, out, au)
        except Exception as exc:
            log.debug("relay %s: dropping reader %s: %r", self.stream.name, reader.session_id, exc)
            self.readers.pop(reader.session_id, None)
            if reader.on_stuck is not None:
                reader.on_stuck()

    def rtp_time(self, track_id: int, wall: float) -> int:
        track = self._tracks.get(track_id)
        if track is None:
            return 0
        return (self._offsets[track_id] + int((wall - self._epoch_wall) * track.clock_rate)) & 0xFFFFFFFF

    def add_reader(self, reader: RelayReader) -> None:
        """Start a reader with an SR per track, then the cached GOP so it decodes at once."""
        self.readers[reader.session_id] = reader
        reader.need_keyframe = reader.has_video
        reader.rtp_time = self.rtp_time
        if reader.send_rtcp is not None:
            # An SR before the first packet lets players map every track to one clock from the start.
            for rt, sr in reader.sender_reports(time.time(), initial=True):
                reader.send_rtcp(rt, sr)
        for au in self.stream.gop_snapshot():
            track = reader.tracks.get(au.track)
            if track is not None:
                self._send(reader, track, self.prepare(au), au)

    def remove_reader(self, session_id: str) -> None:
        self.readers.pop(session_id, None)
