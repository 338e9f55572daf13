"""Fan-out of one live stream to its RTSP readers: packetize once, send to each with its own SSRC/seq.

Each access unit is packetized once per stream (RFC 6184 / RFC 3640); each reader gets the same
payload bytes behind a 12-byte header carrying its own sequence number and SSRC. Readers never slow
the publisher: a UDP reader gets packets while the socket takes them; a TCP reader whose unsent
bytes pass its limit loses access units, counted, and resumes at the next keyframe (GOP-aware drop);
one that stays over the limit longer than the write deadline is closed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hivecast.media.live import AccessUnit, LiveStream, TrackInfo
from hivecast.rtp.aac import AacPacketizer
from hivecast.rtp.h264 import H264Packetizer, annexb_split
from hivecast.rtp.rtcp import (
    ReceiverReport,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
)
from hivecast.rtp.stats import round_trip_time
from hivecast.rtsp.describe import AUDIO_PT, VIDEO_PT

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
TCP_RTP_HEADER = struct.Struct("!BBHBBHII")  # '$', channel, length, then the RTP header

UdpSend = Callable[[bytes, tuple[str, int]], None]


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
                 udp_send: UdpSend | None = None, udp_buffered: Callable[[], int] | None = None,
                 tcp: asyncio.WriteTransport | None = None, max_buffer: int = 4 * 1024 * 1024,
                 write_timeout: float = 10.0, on_stuck: Callable[[], None] | None = None,
                 send_rtcp: Callable[[ReaderTrack, bytes], None] | None = None) -> None:
        self.session_id = session_id
        self.send_rtcp = send_rtcp
        # Set by the relay: the RTP timestamp of a track at a wall-clock instant (one media clock).
        self.rtp_time: Callable[[int, float], int] | None = None
        self.tracks = tracks
        self.udp_send = udp_send
        self.udp_buffered = udp_buffered
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
            return self.tcp.get_write_buffer_size()
        return self.udp_buffered() if self.udp_buffered is not None else 0

    def send(self, rt: ReaderTrack, packets: list[tuple[bytes, bool]], pt: int, ts: int, au: AccessUnit) -> None:
        video = rt.track.kind == "video"
        if self.need_keyframe:
            if not (video and au.keyframe):
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
        seq, ssrc = rt.seq, rt.ssrc
        size = 0
        if self.tcp is not None:
            frames = []
            for payload, marker in packets:
                frames.append(TCP_RTP_HEADER.pack(0x24, rt.channel, 12 + len(payload), 0x80,
                                                  (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload)
                seq = (seq + 1) & 0xFFFF
                size += len(payload)
            self.tcp.writelines(frames)
        elif self.udp_send is not None and rt.udp_rtp is not None:
            addr, send = rt.udp_rtp, self.udp_send
            for payload, marker in packets:
                send(RTP_HEADER.pack(0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload, addr)
                seq = (seq + 1) & 0xFFFF
                size += len(payload)
        rt.seq = seq
        rt.packets += len(packets)
        rt.octets += size
        rt.last_ts = ts
        rt.last_sent = au.arrival or time.monotonic()
        self.bytes_sent += size + 12 * len(packets)
        self._rate_bytes += size + 12 * len(packets)

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
        self._offsets = {t.id: random.getrandbits(32) for t in stream.tracks}
        # Wall-clock instant of media time zero, so SRs of every track map to one clock (lip sync).
        self._epoch_wall = time.time() - (time.monotonic() - stream.started_at)
        self._tracks = {t.id: t for t in stream.tracks}
        self.readers: dict[str, RelayReader] = {}
        self._remove_sink: Callable[[], None] | None = stream.add_sink(self.on_access_unit)

    def close(self) -> None:
        if self._remove_sink is not None:
            self._remove_sink()
            self._remove_sink = None
        self.readers.clear()

    def packetize(self, au: AccessUnit) -> tuple[list[tuple[bytes, bool]], int, int]:
        """(payloads with markers, payload type, RTP timestamp) for one access unit."""
        ts = (au.pts + self._offsets.get(au.track, 0)) & 0xFFFFFFFF
        if au.codec == "h264":
            return self._h264.packetize(annexb_split(au.data)), VIDEO_PT, ts
        if au.codec == "aac":
            return self._aac.packetize(au.data), AUDIO_PT, ts
        return [], 0, ts

    def on_access_unit(self, au: AccessUnit) -> None:
        if not self.readers or au.track not in self._tracks:
            return
        packets, pt, ts = self.packetize(au)
        if not packets:
            return
        for reader in list(self.readers.values()):
            rt = reader.tracks.get(au.track)
            if rt is not None:
                reader.send(rt, packets, pt, ts, au)

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
            rt = reader.tracks.get(au.track)
            if rt is not None:
                packets, pt, ts = self.packetize(au)
                reader.send(rt, packets, pt, ts, au)

    def remove_reader(self, session_id: str) -> None:
        self.readers.pop(session_id, None)
