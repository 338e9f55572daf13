"""H.265 RTP payload format (RFC 7798): single NAL unit, aggregation (AP) and fragmentation (FU) packets.

No DONL fields (sprop-max-don-diff=0, what encoders and ffmpeg send). Access units travel as lists
of NAL units; the Annex-B helpers of hivecast.rtp.h264 apply unchanged.
"""

from __future__ import annotations

from hivecast.rtp.errors import PayloadError
from hivecast.rtp.h264 import H264AccessUnit, NalPacketizer, NalUnitAssembler

NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34
NAL_AUD = 35
AP = 48
FU = 49
IRAP = range(16, 24)  # BLA, IDR, CRA (and reserved IRAP types): random access points


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if nal else -1


def is_keyframe(nals: list[bytes]) -> bool:
    return any(nal_type(n) in IRAP for n in nals)


class H265Packetizer(NalPacketizer):
    nal_header_size = 2

    def skip(self, nal: bytes) -> bool:
        return len(nal) < 3 or nal_type(nal) == NAL_AUD

    def aggregation_header(self, nals: list[bytes]) -> bytes:
        # PayloadHdr of an AP: F bit OR-ed, lowest layer id and TID of the aggregated units (4.4.2).
        f = max(n[0] & 0x80 for n in nals)
        layer = min(((n[0] & 1) << 5) | (n[1] >> 3) for n in nals)
        tid = min(n[1] & 7 for n in nals)
        return bytes((f | (AP << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid))

    def fragment_header(self, nal: bytes) -> tuple[bytes, int]:
        # FU (RFC 7798 4.4.3): the PayloadHdr keeps F, layer id and TID with type 49.
        return bytes(((nal[0] & 0x81) | (FU << 1), nal[1])), nal_type(nal)


class H265Depacketizer(NalUnitAssembler):
    fragment_name = "FU"

    def push(self, payload: bytes, timestamp: int, marker: bool, seq: int | None = None) -> list[H264AccessUnit]:
        out: list[H264AccessUnit] = []
        if seq is not None:
            if self._last_seq is not None and seq != (self._last_seq + 1) & 0xFFFF and self._fu is not None:
                self._fu = None
                self.dropped_nals += 1
            self._last_seq = seq
        if self._au is not None and self._au.timestamp != timestamp:
            out.extend(self._finish())
        if len(payload) < 3:
            raise PayloadError("H.265 payload shorter than its header")
        kind = nal_type(payload)
        if kind < AP:
            self._add(timestamp, payload)
        elif kind == AP:
            pos = 2
            while pos < len(payload):
                if pos + 2 > len(payload):
                    raise PayloadError("AP size field truncated")
                size = int.from_bytes(payload[pos : pos + 2], "big")
                pos += 2
                if size < 2 or pos + size > len(payload):
                    raise PayloadError("AP NAL unit truncated")
                self._add(timestamp, payload[pos : pos + size])
                pos += size
        elif kind == FU:
            fu = payload[2]
            self._fragment(timestamp, start=bool(fu & 0x80), end=bool(fu & 0x40),
                           header=bytes(((payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1])), data=payload[3:])
        else:
            raise PayloadError(f"unsupported H.265 packet type {kind}")
        if marker:
            out.extend(self._finish())
        return out
