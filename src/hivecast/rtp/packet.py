"""RTP data packets (RFC 3550 section 5.1) with RFC 8285 header extensions. Sans I/O."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hivecast.rtp.errors import MalformedPacket

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
# RFC 8285 section 4.2 / 4.3: the "defined by profile" values that mark one- and two-byte elements.
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000


@dataclass(slots=True)
class HeaderExtension:
    """The raw extension block (RFC 3550 section 5.3.1): profile word and the data words."""

    profile: int
    data: bytes

    def elements(self) -> dict[int, bytes]:
        """Decode RFC 8285 elements (id -> value); other profiles give an empty dict."""
        out: dict[int, bytes] = {}
        data = self.data
        i = 0
        if self.profile == ONE_BYTE_PROFILE:
            while i < len(data):
                b = data[i]
                if b == 0:  # padding byte
                    i += 1
                    continue
                ident, length = b >> 4, (b & 0x0F) + 1
                if ident == 15:  # reserved: stop processing (RFC 8285 section 4.2)
                    break
                if i + 1 + length > len(data):
                    raise MalformedPacket("one-byte extension element runs past the block")
                out[ident] = bytes(data[i + 1 : i + 1 + length])
                i += 1 + length
        elif self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
            while i < len(data):
                if data[i] == 0:
                    i += 1
                    continue
                if i + 2 > len(data):
                    raise MalformedPacket("two-byte extension element header truncated")
                ident, length = data[i], data[i + 1]
                if i + 2 + length > len(data):
                    raise MalformedPacket("two-byte extension element runs past the block")
                out[ident] = bytes(data[i + 2 : i + 2 + length])
                i += 2 + length
        return out

    @classmethod
    def from_elements(cls, elements: dict[int, bytes]) -> HeaderExtension:
        """Encode elements, one-byte form when every id is 1..14 and value 1..16 bytes, else two-byte."""
        one_byte = all(1 <= k <= 14 and 1 <= len(v) <= 16 for k, v in elements.items())
        out = bytearray()
        for ident, value in sorted(elements.items()):
            if one_byte:
                out.append((ident << 4) | (len(value) - 1))
            else:
                if not (1 <= ident <= 255 and len(value) <= 255):
                    raise ValueError("extension element id or length out of range")
                out += bytes((ident, len(value)))
            out += value
        while len(out) % 4:
            out.append(0)
        return cls(ONE_BYTE_PROFILE if one_byte else TWO_BYTE_PROFILE, bytes(out))


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension: HeaderExtension | None = None
    padding: int = 0  # bytes of padding to add when serializing (the last one holds the count)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        data = bytes(data)
        if len(data) < HEADER.size:
            raise MalformedPacket(f"RTP packet of {len(data)} bytes is shorter than its header")
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise MalformedPacket(f"RTP version {b0 >> 6} is not 2")
        cc = b0 & 0x0F
        pos = HEADER.size + 4 * cc
        if len(data) < pos:
            raise MalformedPacket("CSRC list truncated")
        csrc = list(struct.unpack_from(f"!{cc}I", data, HEADER.size)) if cc else []
        extension = None
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise MalformedPacket("extension header truncated")
            profile, words = struct.unpack_from("!HH", data, pos)
            end = pos + 4 + 4 * words
            if len(data) < end:
                raise MalformedPacket("extension data truncated")
            extension = HeaderExtension(profile, data[pos + 4 : end])
            pos = end
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            # RFC 3550 5.1: the last octet counts the padding, itself included.
            if padding == 0 or end - padding < pos:
                raise MalformedPacket("bad padding length")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[pos:end],
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [HEADER.pack(b0, b1, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                             self.ssrc & 0xFFFFFFFF)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension.data
            if len(ext) % 4:
                ext = ext + b"\x00" * (4 - len(ext) % 4)
            parts.append(struct.pack("!HH", self.extension.profile, len(ext) // 4))
            parts.append(ext)
        parts.append(self.payload)
        if self.padding:
            if not 1 <= self.padding <= 255:
                raise ValueError("padding must be 1..255 bytes")
            parts.append(b"\x00" * (self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def is_rtcp(data: bytes | memoryview) -> bool:
    """RFC 5761 section 4: tell RTCP from RTP on a shared channel by the packet type byte."""
    return len(data) >= 2 and 192 <= data[1] <= 223
