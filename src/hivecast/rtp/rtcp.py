"""RTCP packets (RFC 3550 section 6): SR, RR, SDES, BYE, APP and compound packets. Sans I/O.

`parse_compound(data)` returns the packets of a compound datagram; unknown packet types (for
example RTPFB/PSFB feedback) come back as `RtcpUnknown` so a receiver can skip them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hivecast.rtp.errors import MalformedPacket

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1

_REPORT_BLOCK = struct.Struct("!IB3sIIII")
MAX_COMPOUND_PACKETS = 64  # bound on packets parsed from one datagram


@dataclass(slots=True)
class ReportBlock:
    """One reception report (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point: lost/expected * 256 since the last report
    packets_lost: int  # cumulative, 24-bit signed
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received
    dlsr: int  # delay since that SR, in 1/65536 s

    SIZE = 24

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost_i = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, lost_i, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.packets_lost))
        return _REPORT_BLOCK.pack(self.ssrc & 0xFFFFFFFF, self.fraction_lost & 0xFF,
                                  lost.to_bytes(3, "big", signed=True), self.highest_sequence & 0xFFFFFFFF,
                                  self.jitter & 0xFFFFFFFF, self.lsr & 0xFFFFFFFF, self.dlsr & 0xFFFFFFFF)


def _header(count: int, packet_type: int, body_len: int, padding: bool = False) -> bytes:
    if body_len % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | (count & 0x1F), packet_type,
                       body_len // 4)


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time of sending
    rtp_timestamp: int  # the same instant on the RTP media clock
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!IQIII", self.ssrc & 0xFFFFFFFF, self.ntp_timestamp & (2**64 - 1),
                           self.rtp_timestamp & 0xFFFFFFFF, self.packet_count & 0xFFFFFFFF,
                           self.octet_count & 0xFFFFFFFF)
        body += b"".join(r.serialize() for r in self.reports[:31])
        return _header(len(self.reports[:31]), RTCP_SR, len(body)) + body


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc & 0xFFFFFFFF) + b"".join(r.serialize() for r in self.reports[:31])
        return _header(len(self.reports[:31]), RTCP_RR, len(body)) + body


@dataclass(slots=True)
class SdesChunk:
    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class SourceDescription:
    chunks: list[SdesChunk] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks[:31]:
            body += struct.pack("!I", chunk.ssrc & 0xFFFFFFFF)
            for kind, value in chunk.items:
                value = value[:255]
                body += bytes((kind, len(value))) + value
            # Item list ends with at least one null octet, padded to a 32-bit boundary (6.5).
            body += b"\x00"
            while len(body) % 4:
                body += b"\x00"
        return _header(len(self.chunks[:31]), RTCP_SDES, len(body)) + bytes(body)


@dataclass(slots=True)
class Bye:
    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    def serialize(self) -> bytes:
        body = bytearray(b"".join(struct.pack("!I", s & 0xFFFFFFFF) for s in self.sources[:31]))
        if self.reason:
            reason = self.reason[:255]
            body += bytes((len(reason),)) + reason
            while len(body) % 4:
                body += b"\x00"
        return _header(len(self.sources[:31]), RTCP_BYE, len(body)) + bytes(body)


@dataclass(slots=True)
class App:
    subtype: int
    ssrc: int
    name: bytes  # four ASCII characters
    data: bytes = b""

    def serialize(self) -> bytes:
        if len(self.name) != 4 or len(self.data) % 4:
            raise ValueError("APP name must be 4 bytes and data a multiple of 4")
        body = struct.pack("!I", self.ssrc & 0xFFFFFFFF) + self.name + self.data
        return _header(self.subtype, RTCP_APP, len(body)) + body


@dataclass(slots=True)
class RtcpUnknown:
    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | App | RtcpUnknown


def _reports(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    if offset + count * ReportBlock.SIZE > len(body):
        raise MalformedPacket("report blocks truncated")
    return [ReportBlock.parse(body, offset + i * ReportBlock.SIZE) for i in range(count)]


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise MalformedPacket("SR shorter than its sender info")
        ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
        return SenderReport(ssrc, ntp, rtp_ts, pc, oc, _reports(body, 24, count))
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise MalformedPacket("RR without SSRC")
        return ReceiverReport(struct.unpack_from("!I", body)[0], _reports(body, 4, count))
    if packet_type == RTCP_SDES:
        chunks: list[SdesChunk] = []
        pos = 0
        for _ in range(count):
            if pos + 4 > len(body):
                raise MalformedPacket("SDES chunk truncated")
            chunk = SdesChunk(struct.unpack_from("!I", body, pos)[0])
            pos += 4
            while True:
                if pos >= len(body):
                    raise MalformedPacket("SDES items not terminated")
                kind = body[pos]
                if kind == SDES_END:
                    pos += 1
                    pos += -pos % 4  # chunks start on a 32-bit boundary
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    raise MalformedPacket("SDES item truncated")
                length = body[pos + 1]
                chunk.items.append((kind, body[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(chunk)
        return SourceDescription(chunks)
    if packet_type == RTCP_BYE:
        if 4 * count > len(body):
            raise MalformedPacket("BYE source list truncated")
        sources = list(struct.unpack_from(f"!{count}I", body)) if count else []
        reason = b""
        pos = 4 * count
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise MalformedPacket("BYE reason truncated")
            reason = body[pos + 1 : pos + 1 + length]
        return Bye(sources, reason)
    if packet_type == RTCP_APP:
        if len(body) < 8:
            raise MalformedPacket("APP packet truncated")
        return App(count, struct.unpack_from("!I", body)[0], body[4:8], body[8:])
    return RtcpUnknown(packet_type, count, body)


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse every RTCP packet in a datagram (RFC 3550 section 6.1); raises MalformedPacket."""
    data = bytes(data)
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise MalformedPacket("RTCP datagram shorter than a header")
    while pos < len(data):
        if len(packets) >= MAX_COMPOUND_PACKETS:
            raise MalformedPacket("too many packets in one compound RTCP datagram")
        if pos + 4 > len(data):
            raise MalformedPacket("RTCP header truncated")
        b0, packet_type, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise MalformedPacket("RTCP version is not 2")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise MalformedPacket("RTCP length runs past the datagram")
        body = data[pos + 4 : end]
        if b0 & 0x20:
            # Only the last packet of a compound may be padded (6.4.1); strip the padding.
            if end != len(data) or not body or body[-1] == 0 or body[-1] > len(body):
                raise MalformedPacket("bad RTCP padding")
            body = body[: -body[-1]]
        if not 192 <= packet_type <= 223:
            raise MalformedPacket(f"RTCP packet type {packet_type} out of range")
        packets.append(_parse_one(packet_type, b0 & 0x1F, body))
        pos = end
    return packets


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    return b"".join(p.serialize() for p in packets)


# --- NTP time (RFC 3550 section 4) -------------------------------------------------------------
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_from_unix(t: float) -> int:
    seconds = int(t) + NTP_EPOCH_OFFSET
    fraction = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds & 0xFFFFFFFF) << 32) | fraction


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits used as LSR (RFC 3550 section 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def compact_ntp_from_unix(t: float) -> int:
    return ntp_middle32(ntp_from_unix(t))
