"""H.264 RTP payload format (RFC 6184): single NAL unit, STAP-A and FU-A; packetization mode 1.

Access units are handed around as lists of NAL units (no start codes); `annexb_join` and
`annexb_split` convert to and from the Annex-B byte stream form the media layer uses.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from hivecast.rtp.errors import PayloadError

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
STAP_A = 24
FU_A = 28
START_CODE = b"\x00\x00\x00\x01"
MAX_NALS_PER_AU = 1024
MAX_AU_BYTES = 16 * 1024 * 1024


def annexb_split(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    if i < 0:
        return [data] if data else []
    start = i + 3
    while True:
        j = data.find(b"\x00\x00\x01", start)
        if j < 0:
            nal = data[start:n]
            if nal:
                nals.append(nal.rstrip(b"\x00") if nal.endswith(b"\x00\x00") else nal)
            return nals
        end = j - 1 if j > start and data[j - 1] == 0 else j
        if end > start:
            nals.append(data[start:end])
        start = j + 3


def annexb_join(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def is_keyframe(nals: list[bytes]) -> bool:
    return any(nal_type(n) == NAL_IDR for n in nals)


def profile_level_id(sps: bytes) -> str:
    """The fmtp profile-level-id: profile_idc, constraint flags, level_idc (bytes 1..3 of the SPS)."""
    if len(sps) < 4:
        return "42e01f"
    return sps[1:4].hex()


def sprop_parameter_sets(sps: bytes, pps: bytes) -> str:
    return ",".join(base64.b64encode(x).decode() for x in (sps, pps))


def parse_sprop_parameter_sets(value: str) -> list[bytes]:
    out: list[bytes] = []
    for part in value.split(",")[:8]:
        part = part.strip()
        if part:
            try:
                out.append(base64.b64decode(part + "=" * (-len(part) % 4)))
            except ValueError as exc:
                raise PayloadError(f"bad sprop-parameter-sets: {exc}") from None
    return out


class NalPacketizer:
    """Access unit (list of NALs) -> RTP payloads with the marker on the last packet of the AU.

    NALs that fit share an aggregation packet (STAP-A, AP) up to the MTU; larger ones are split into
    fragmentation units (FU-A, FU). The loop is the same for H.264 and H.265; a codec supplies its
    NAL header size and the headers of the two packet kinds.
    """

    nal_header_size = 1

    def __init__(self, mtu: int = 1200) -> None:
        if mtu < 64:
            raise ValueError("mtu too small")
        self.mtu = mtu

    def skip(self, nal: bytes) -> bool:
        raise NotImplementedError

    def aggregation_header(self, nals: list[bytes]) -> bytes:
        raise NotImplementedError

    def fragment_header(self, nal: bytes) -> tuple[bytes, int]:
        """The bytes before the FU header, and the NAL type the FU header carries."""
        raise NotImplementedError

    def packetize(self, nals: list[bytes]) -> list[tuple[bytes, bool]]:
        payloads: list[bytes] = []
        pending: list[bytes] = []  # small NALs to aggregate into one packet
        empty = self.nal_header_size  # an aggregation packet's own header
        size = empty

        def flush() -> None:
            if len(pending) == 1:
                payloads.append(pending[0])
            elif pending:
                payloads.append(self.aggregation_header(pending) + b"".join(
                    len(n).to_bytes(2, "big") + n for n in pending))
            pending.clear()

        for nal in nals:
            if self.skip(nal):
                continue
            if len(nal) <= self.mtu:
                if size + 2 + len(nal) > self.mtu:
                    flush()
                    size = empty
                pending.append(nal)
                size += 2 + len(nal)
                continue
            flush()
            size = empty
            prefix, kind = self.fragment_header(nal)
            body = memoryview(nal)[self.nal_header_size:]
            chunk = self.mtu - len(prefix) - 1
            for off in range(0, len(body), chunk):
                fu = kind
                if off == 0:
                    fu |= 0x80
                if off + chunk >= len(body):
                    fu |= 0x40
                payloads.append(prefix + bytes((fu,)) + body[off : off + chunk])
        flush()
        return [(p, i == len(payloads) - 1) for i, p in enumerate(payloads)]


class H264Packetizer(NalPacketizer):
    def skip(self, nal: bytes) -> bool:
        return not nal or nal_type(nal) == NAL_AUD

    def aggregation_header(self, nals: list[bytes]) -> bytes:
        return bytes((max(n[0] & 0x60 for n in nals) | STAP_A,))

    def fragment_header(self, nal: bytes) -> tuple[bytes, int]:
        # FU-A (RFC 6184 5.8): the FU indicator carries F and NRI, the FU header S/E and the type.
        return bytes(((nal[0] & 0xE0) | FU_A,)), nal[0] & 0x1F


@dataclass(slots=True)
class H264AccessUnit:
    timestamp: int
    nals: list[bytes] = field(default_factory=list)

    @property
    def keyframe(self) -> bool:
        return is_keyframe(self.nals)


class NalUnitAssembler:
    """What H.264 and H.265 depacketizing share: NAL units gathered into the access unit of their
    RTP timestamp, fragmented NAL units reassembled, both within the size bounds, and a fragment
    lost in between dropping only its own NAL unit."""

    fragment_name = "FU"

    def __init__(self) -> None:
        self._au: H264AccessUnit | None = None
        self._size = 0
        self._fu: bytearray | None = None
        self._last_seq: int | None = None
        self.dropped_nals = 0

    def _fragment(self, timestamp: int, *, start: bool, end: bool, header: bytes, data: bytes) -> None:
        if start:
            if self._fu is not None:
                self.dropped_nals += 1
            self._fu = bytearray(header)
            self._fu += data
        elif self._fu is None:
            self.dropped_nals += 1  # middle of a NAL whose start we lost
        else:
            self._fu += data
            if len(self._fu) > MAX_AU_BYTES:
                self._fu = None
                raise PayloadError(f"{self.fragment_name} NAL unit too large")
        if end and self._fu is not None:
            self._add(timestamp, bytes(self._fu))
            self._fu = None

    def _add(self, timestamp: int, nal: bytes) -> None:
        if self._au is None:
            self._au = H264AccessUnit(timestamp)
            self._size = 0
        if len(self._au.nals) >= MAX_NALS_PER_AU or self._size + len(nal) > MAX_AU_BYTES:
            raise PayloadError("access unit too large")
        self._au.nals.append(nal)
        self._size += len(nal)

    def _finish(self) -> list[H264AccessUnit]:
        au, self._au = self._au, None
        self._fu = None
        return [au] if au is not None and au.nals else []

    def flush(self) -> list[H264AccessUnit]:
        return self._finish()


class H264Depacketizer(NalUnitAssembler):
    """RTP payloads (in sequence order) -> access units. A lost fragment drops its NAL unit."""

    fragment_name = "FU-A"

    def push(self, payload: bytes, timestamp: int, marker: bool, seq: int | None = None) -> list[H264AccessUnit]:
        out: list[H264AccessUnit] = []
        gap = False
        if seq is not None:
            gap = self._last_seq is not None and seq != (self._last_seq + 1) & 0xFFFF
            self._last_seq = seq
        if self._au is not None and self._au.timestamp != timestamp:
            out.extend(self._finish())
        if gap and self._fu is not None:
            self._fu = None
            self.dropped_nals += 1
        if not payload:
            raise PayloadError("empty H.264 payload")
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._add(timestamp, payload)
        elif kind == STAP_A:
            pos = 1
            while pos < len(payload):
                if pos + 2 > len(payload):
                    raise PayloadError("STAP-A size field truncated")
                size = int.from_bytes(payload[pos : pos + 2], "big")
                pos += 2
                if size == 0 or pos + size > len(payload):
                    raise PayloadError("STAP-A NAL unit truncated")
                self._add(timestamp, payload[pos : pos + size])
                pos += size
        elif kind == FU_A:
            if len(payload) < 2:
                raise PayloadError("FU-A header truncated")
            self._fragment(timestamp, start=bool(payload[1] & 0x80), end=bool(payload[1] & 0x40),
                           header=bytes(((payload[0] & 0xE0) | (payload[1] & 0x1F),)), data=payload[2:])
        else:
            raise PayloadError(f"unsupported H.264 packet type {kind}")
        if marker:
            out.extend(self._finish())
        return out
