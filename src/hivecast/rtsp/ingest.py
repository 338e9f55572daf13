"""From a publisher's RTP to access units, per track, with RFC 3550 receiver statistics. Sans I/O.

Used by the server for ANNOUNCE/RECORD publishers and by the client when it pulls a stream.
"""

from __future__ import annotations

import heapq

from hivecast.media.live import AccessUnit, TrackInfo
from hivecast.rtp import MalformedPacket, PayloadError, ReceiverStats, RtpPacket, h265, opus
from hivecast.rtp.aac import AacDepacketizer
from hivecast.rtp.h264 import NAL_PPS, NAL_SPS, H264Depacketizer, annexb_join, nal_type
from hivecast.rtp.h265 import H265Depacketizer
from hivecast.rtp.jitterbuffer import JitterBuffer
from hivecast.rtp.rtcp import ReceiverReport, RtcpPacket, SdesChunk, SenderReport, SourceDescription


class StreamClock:
    """Shared start instant of a stream, so tracks that start at different moments stay aligned."""

    def __init__(self) -> None:
        self.start: float | None = None

    def offset(self, now: float) -> float:
        if self.start is None:
            self.start = now
        return now - self.start


class DtsEstimator:
    """Decode timestamps for video whose RTP timestamps are presentation times (B-frames reorder them).

    RTP carries only pts. With a reorder depth of at most `depth` frames, the n-th decode timestamp
    is the n-th smallest pts, known once `depth` more frames have arrived; so dts[n] is the smallest
    pts not yet used, popped once more than `depth` are waiting. That keeps dts strictly increasing
    and never above pts, for streams with and without B-frames, at no added latency. The first
    `depth` frames get dts just below the first pts; everything is shifted up by `depth` ticks so
    no timestamp is negative.
    """

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self._heap: list[int] = []
        self._last: int | None = None

    def push(self, pts: int) -> tuple[int, int]:
        """(pts, dts) for the next frame in decode order."""
        heapq.heappush(self._heap, pts)
        if len(self._heap) > self.depth:
            dts = heapq.heappop(self._heap)
        else:
            dts = self._heap[0] - (self.depth - len(self._heap) + 1)
        dts = min(dts, pts)
        if self._last is not None and dts <= self._last:
            # A stream reordering deeper than `depth` (or repeating timestamps): dts must still grow.
            dts = self._last + 1
        self._last = dts
        return pts + self.depth, dts + self.depth


class TrackReceiver:
    def __init__(self, info: TrackInfo, clock: StreamClock, *, reorder: bool = True) -> None:
        self.info = info
        self.clock = clock
        self.stats: ReceiverStats | None = None
        self.jitter = JitterBuffer(capacity=256, latency=0.15) if reorder else None
        self._h264 = H264Depacketizer() if info.codec == "h264" else None
        self._aac = AacDepacketizer() if info.codec == "aac" else None
        self._h265 = H265Depacketizer() if info.codec == "h265" else None
        self.vps = info.vps
        self._first_ts: int | None = None
        self._last_ext_ts = 0
        self._start_offset = 0
        self.sps, self.pps = info.sps, info.pps
        self._dts = DtsEstimator()
        self.packets = 0
        self.bytes = 0
        self.errors = 0
        self.units = 0
        self._rate_bytes = 0
        self._rate_time: float | None = None
        self.bitrate = 0.0

    def _pts(self, ts: int, now: float) -> int:
        if self._first_ts is None:
            self._first_ts = ts
            self._last_ext_ts = ts
            self._start_offset = int(self.clock.offset(now) * self.info.clock_rate)
        # Unwrap the 32-bit timestamp around the last one seen (forward or slightly backward).
        delta = (ts - self._last_ext_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 1 << 32
        ext = self._last_ext_ts + delta
        self._last_ext_ts = max(self._last_ext_ts, ext)
        return max(0, ext - self._first_ts + self._start_offset)

    def on_rtp(self, data: bytes, now: float) -> list[AccessUnit]:
        try:
            pkt = RtpPacket.parse(data)
        except MalformedPacket:
            self.errors += 1
            return []
        self.packets += 1
        self.bytes += len(data)
        self._rate_bytes += len(data)
        if self.stats is None or self.stats.ssrc != pkt.ssrc:
            self.stats = ReceiverStats(pkt.ssrc, self.info.clock_rate, probation=0)
        self.stats.on_packet(pkt.sequence_number, pkt.timestamp, now, len(pkt.payload))
        ordered = self.jitter.push(pkt, now) if self.jitter is not None else [pkt]
        out: list[AccessUnit] = []
        for p in ordered:
            out.extend(self._depacketize(p, now))
        return out

    def poll(self, now: float) -> list[AccessUnit]:
        """Release packets held for reordering past their latency (call on a timer)."""
        if self.jitter is None:
            return []
        out: list[AccessUnit] = []
        for p in self.jitter.pop_ready(now):
            out.extend(self._depacketize(p, now))
        return out

    def _depacketize(self, pkt: RtpPacket, now: float) -> list[AccessUnit]:
        out: list[AccessUnit] = []
        try:
            if self._h264 is not None:
                for au in self._h264.push(pkt.payload, pkt.timestamp, pkt.marker, pkt.sequence_number):
                    nals = au.nals
                    types = {nal_type(n) for n in nals}
                    for n in nals:
                        if nal_type(n) == NAL_SPS:
                            self.sps = n
                        elif nal_type(n) == NAL_PPS:
                            self.pps = n
                    key = au.keyframe
                    if key and NAL_SPS not in types and self.sps and self.pps:
                        nals = [self.sps, self.pps, *nals]  # keyframes carry their parameter sets in band
                    pts, dts = self._dts.push(self._pts(au.timestamp, now))
                    out.append(AccessUnit(self.info.id, "h264", pts, dts, self.info.clock_rate, key,
                                          annexb_join(nals)))
            elif self._h265 is not None:
                for au in self._h265.push(pkt.payload, pkt.timestamp, pkt.marker, pkt.sequence_number):
                    nals = au.nals
                    for n in nals:
                        kind = h265.nal_type(n)
                        if kind == h265.NAL_VPS:
                            self.vps = n
                        elif kind == h265.NAL_SPS:
                            self.sps = n
                        elif kind == h265.NAL_PPS:
                            self.pps = n
                    key = h265.is_keyframe(nals)
                    if key and not any(h265.nal_type(n) == h265.NAL_SPS for n in nals) and self.sps and self.pps:
                        nals = [x for x in (self.vps, self.sps, self.pps) if x] + nals
                    pts, dts = self._dts.push(self._pts(au.timestamp, now))
                    out.append(AccessUnit(self.info.id, "h265", pts, dts, self.info.clock_rate, key,
                                          annexb_join(nals)))
            elif self.info.codec == "opus":
                pts = self._pts(pkt.timestamp, now)
                out.append(AccessUnit(self.info.id, "opus", pts, pts, opus.CLOCK_RATE, True,
                                      opus.depacketize(pkt.payload)))
            elif self._aac is not None:
                for frame in self._aac.push(pkt.payload, pkt.timestamp, pkt.marker, pkt.sequence_number):
                    pts = self._pts(frame.timestamp, now)
                    out.append(AccessUnit(self.info.id, "aac", pts, pts, self.info.clock_rate, True, frame.data))
        except PayloadError:
            self.errors += 1
        self.units += len(out)
        return out

    def on_rtcp(self, packets: list[RtcpPacket], now: float, wallclock: float) -> None:
        for p in packets:
            if isinstance(p, SenderReport) and self.stats is not None and p.ssrc == self.stats.ssrc:
                self.stats.on_sender_report(p.ntp_timestamp, now)

    def receiver_report(self, our_ssrc: int, now: float, cname: bytes = b"hivecast") -> bytes | None:
        if self.stats is None:
            return None
        rr = ReceiverReport(our_ssrc, [self.stats.report_block(now)])
        sdes = SourceDescription([SdesChunk(our_ssrc, [(1, cname)])])
        return rr.serialize() + sdes.serialize()

    def qos(self, now: float) -> dict[str, float | int]:
        if self._rate_time is not None and now > self._rate_time:
            self.bitrate = self._rate_bytes * 8 / (now - self._rate_time)
        self._rate_time = now
        self._rate_bytes = 0
        stats = self.stats
        return {
            "packets": self.packets,
            "bitrate_bps": round(self.bitrate),
            "lost": stats.lost if stats else 0,
            "jitter_ms": round(stats.jitter / self.info.clock_rate * 1000, 3) if stats else 0.0,
            "errors": self.errors,
        }
