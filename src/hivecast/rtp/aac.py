"""AAC over RTP, RFC 3640 mode AAC-hbr (sizelength=13, indexlength=3, indexdeltalength=3).

Frames are raw AAC (no ADTS header); one RTP timestamp unit is one sample, so consecutive
frames are 1024 units apart. Frames larger than the MTU are fragmented (RFC 3640 3.2.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from hivecast.rtp.errors import PayloadError

SAMPLES_PER_FRAME = 1024
SIZE_LENGTH = 13
INDEX_LENGTH = 3
MAX_FRAME_BYTES = (1 << SIZE_LENGTH) - 1
MAX_HEADERS = 512

SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]


@dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    object_type: int
    sample_rate: int
    channels: int

    @classmethod
    def parse(cls, data: bytes) -> AudioSpecificConfig:
        """The fields we need from ISO 14496-3 1.6.2.1 (object type, frequency, channel config)."""
        if len(data) < 2:
            raise PayloadError("AudioSpecificConfig shorter than 2 bytes")
        bits = int.from_bytes(data[:5].ljust(5, b"\x00"), "big")
        total = 40
        pos = 0

        def take(n: int) -> int:
            nonlocal pos
            value = (bits >> (total - pos - n)) & ((1 << n) - 1)
            pos += n
            return value

        object_type = take(5)
        if object_type == 31:
            object_type = 32 + take(6)
        freq_index = take(4)
        if freq_index == 15:
            if len(data) < 5:
                raise PayloadError("AudioSpecificConfig explicit frequency truncated")
            rate = take(24)
        elif freq_index < len(SAMPLE_RATES):
            rate = SAMPLE_RATES[freq_index]
        else:
            raise PayloadError(f"bad sampling frequency index {freq_index}")
        channels = take(4)
        return cls(object_type, rate, channels)

    def serialize(self) -> bytes:
        if self.sample_rate in SAMPLE_RATES and self.object_type < 31:
            value = (self.object_type << 11) | (SAMPLE_RATES.index(self.sample_rate) << 7) | (self.channels << 3)
            return value.to_bytes(2, "big")
        raise ValueError("only standard sample rates and object types < 31 are encoded")


def fmtp(config: bytes) -> str:
    return (f"streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength={SIZE_LENGTH}; "
            f"indexlength={INDEX_LENGTH}; indexdeltalength={INDEX_LENGTH}; config={config.hex()}")


class AacPacketizer:
    def __init__(self, mtu: int = 1200) -> None:
        self.mtu = mtu

    def packetize(self, frame: bytes) -> list[tuple[bytes, bool]]:
        """One frame -> payloads; all share the frame's timestamp, the marker ends the frame."""
        if len(frame) > MAX_FRAME_BYTES:
            raise PayloadError("AAC frame too large for sizelength=13")
        header = b"\x00\x10" + ((len(frame) << INDEX_LENGTH) & 0xFFFF).to_bytes(2, "big")
        room = self.mtu - 4
        if len(frame) <= room:
            return [(header + frame, True)]
        chunks = [frame[i : i + room] for i in range(0, len(frame), room)]
        return [(header + c, i == len(chunks) - 1) for i, c in enumerate(chunks)]


@dataclass(slots=True)
class AacFrame:
    timestamp: int
    data: bytes


class AacDepacketizer:
    def __init__(self) -> None:
        self._fragment: bytearray | None = None
        self._fragment_size = 0
        self._fragment_ts = 0
        self._last_seq: int | None = None
        self.dropped = 0

    def push(self, payload: bytes, timestamp: int, marker: bool, seq: int | None = None) -> list[AacFrame]:
        if seq is not None:
            if self._last_seq is not None and seq != (self._last_seq + 1) & 0xFFFF and self._fragment is not None:
                self._fragment = None
                self.dropped += 1
            self._last_seq = seq
        if len(payload) < 2:
            raise PayloadError("AAC payload without AU-headers-length")
        header_bits = int.from_bytes(payload[:2], "big")
        header_bytes = (header_bits + 7) // 8
        if header_bits % (SIZE_LENGTH + INDEX_LENGTH):
            raise PayloadError("AU-headers-length is not a whole number of AU headers")
        count = header_bits // (SIZE_LENGTH + INDEX_LENGTH)
        if count == 0 or count > MAX_HEADERS or 2 + header_bytes > len(payload):
            raise PayloadError("bad AU header section")
        headers = int.from_bytes(payload[2 : 2 + header_bytes], "big")
        pad = header_bytes * 8 - header_bits
        sizes: list[int] = []
        for i in range(count):
            shift = pad + (count - 1 - i) * 16
            sizes.append((headers >> (shift + INDEX_LENGTH)) & MAX_FRAME_BYTES)
        data = memoryview(payload)[2 + header_bytes :]
        if self._fragment is not None and count > 1:
            self._fragment = None
            self.dropped += 1
        if count == 1 and (sizes[0] > len(data) or self._fragment is not None):
            return self._fragmented(sizes[0], bytes(data), timestamp, marker)
        out: list[AacFrame] = []
        pos = 0
        for i, size in enumerate(sizes):
            if pos + size > len(data):
                raise PayloadError("AU data shorter than its AU header says")
            out.append(AacFrame((timestamp + i * SAMPLES_PER_FRAME) & 0xFFFFFFFF, bytes(data[pos : pos + size])))
            pos += size
        return out

    def _fragmented(self, size: int, data: bytes, timestamp: int, marker: bool) -> list[AacFrame]:
        if self._fragment is None or self._fragment_ts != timestamp:
            if self._fragment is not None:
                self.dropped += 1
            self._fragment = bytearray()
            self._fragment_size = size
            self._fragment_ts = timestamp
        self._fragment += data
        if len(self._fragment) > MAX_FRAME_BYTES:
            self._fragment = None
            raise PayloadError("fragmented AAC frame too large")
        if marker or len(self._fragment) >= self._fragment_size:
            frame, self._fragment = bytes(self._fragment), None
            if len(frame) != self._fragment_size:
                self.dropped += 1
                return []
            return [AacFrame(timestamp, frame)]
        return []
