"""FLV tags and the codec payloads RTMP carries (FLV specification v10.1, Enhanced RTMP v2).

Video: legacy AVC (codec id 7: AVCPacketType, composition time, AVCDecoderConfigurationRecord or
length-prefixed NAL units), the legacy HEVC id 12 some Chinese encoders use, and the Enhanced
RTMP extended header (IsExHeader bit, packet type, FourCC hvc1/av01/vp09/avc1, composition time
only for CodedFrames). Audio: AAC (AudioSpecificConfig or raw frames) and the Enhanced RTMP
audio header (sound format 9, FourCC Opus/mp4a/...). Multitrack packets are recognised and refused.

Also the codec records: AVCDecoderConfigurationRecord and HEVCDecoderConfigurationRecord to and
from parameter sets, checks of the AV1 (av1C) and VP9 (vpcC) records, and Annex-B <-> length-prefixed
NAL unit conversion.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hivecast.rtmp.errors import FlvError

# Legacy video codec ids and frame types.
CODEC_AVC, CODEC_HEVC_LEGACY = 7, 12
FRAME_KEY, FRAME_INTER, FRAME_COMMAND = 1, 2, 5
# Enhanced RTMP video packet types.
PKT_SEQUENCE_START, PKT_CODED_FRAMES, PKT_SEQUENCE_END, PKT_CODED_FRAMES_X, PKT_METADATA = 0, 1, 2, 3, 4
PKT_MPEG2TS_SEQUENCE_START, PKT_MULTITRACK, PKT_MODEX = 5, 6, 7
# Audio.
SOUND_AAC, SOUND_EX_HEADER = 10, 9
AUDIO_PKT_SEQUENCE_START, AUDIO_PKT_CODED_FRAMES = 0, 1

FOURCC_VIDEO = {b"avc1": "h264", b"hvc1": "h265", b"av01": "av1", b"vp09": "vp9"}
FOURCC_AUDIO = {b"Opus": "opus", b"mp4a": "aac", b"fLaC": "flac", b"ac-3": "ac3", b"ec-3": "eac3", b".mp3": "mp3"}
VIDEO_FOURCC = {v: k for k, v in FOURCC_VIDEO.items()}
AUDIO_FOURCC = {v: k for k, v in FOURCC_AUDIO.items()}

START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True, slots=True)
class VideoPacket:
    codec: str  # h264, h265, av1, vp9
    keyframe: bool
    sequence_header: bool
    end_of_sequence: bool
    composition_time: int  # ms, pts - dts
    data: bytes  # config record for a sequence header, else the coded frame (length-prefixed NALs)
    command: bool = False  # a video info/command frame (frame type 5): carries no picture


@dataclass(frozen=True, slots=True)
class AudioPacket:
    codec: str  # aac, opus, mp3, ...
    sequence_header: bool
    data: bytes
    # Sequence end or multichannel configuration (Enhanced RTMP audio packet types 2 and 4): no samples.
    control: bool = False


def _si24(b: bytes) -> int:
    v = (b[0] << 16) | (b[1] << 8) | b[2]
    return v - (1 << 24) if v & 0x800000 else v


def parse_video(payload: bytes) -> VideoPacket:
    if len(payload) < 1:
        raise FlvError("empty video tag")
    b0 = payload[0]
    if b0 & 0x80:
        frame_type = (b0 >> 4) & 0x07
        pkt = b0 & 0x0F
        if pkt in (PKT_MULTITRACK, PKT_MODEX):
            raise FlvError("Enhanced RTMP multitrack/ModEx video packets are not supported")
        if len(payload) < 5:
            raise FlvError("truncated Enhanced RTMP video header")
        fourcc = payload[1:5]
        codec = FOURCC_VIDEO.get(fourcc)
        if codec is None:
            raise FlvError(f"unknown video FourCC {fourcc!r}")
        body = payload[5:]
        cts = 0
        if pkt == PKT_CODED_FRAMES and codec in ("h264", "h265"):
            if len(body) < 3:
                raise FlvError("truncated composition time")
            cts = _si24(body[:3])
            body = body[3:]
        elif pkt == PKT_CODED_FRAMES_X:
            pkt = PKT_CODED_FRAMES
        return VideoPacket(codec, frame_type == FRAME_KEY, pkt == PKT_SEQUENCE_START, pkt == PKT_SEQUENCE_END,
                           cts, bytes(body), command=frame_type == FRAME_COMMAND or pkt == PKT_METADATA)
    frame_type = b0 >> 4
    codec_id = b0 & 0x0F
    if codec_id not in (CODEC_AVC, CODEC_HEVC_LEGACY):
        raise FlvError(f"unsupported legacy video codec id {codec_id}")
    if frame_type == FRAME_COMMAND:
        return VideoPacket("h264", False, False, False, 0, b"", command=True)
    if len(payload) < 5:
        raise FlvError("truncated AVC video header")
    pkt = payload[1]
    if pkt > 2:
        raise FlvError(f"invalid AVCPacketType {pkt}")
    return VideoPacket("h264" if codec_id == CODEC_AVC else "h265", frame_type == FRAME_KEY, pkt == 0, pkt == 2,
                       _si24(payload[2:5]), bytes(payload[5:]))


def parse_audio(payload: bytes) -> AudioPacket:
    if len(payload) < 1:
        raise FlvError("empty audio tag")
    b0 = payload[0]
    fmt = b0 >> 4
    if fmt == SOUND_EX_HEADER:
        pkt = b0 & 0x0F
        if pkt in (5, 7):
            raise FlvError("Enhanced RTMP multitrack/ModEx audio packets are not supported")
        if len(payload) < 5:
            raise FlvError("truncated Enhanced RTMP audio header")
        codec = FOURCC_AUDIO.get(payload[1:5])
        if codec is None:
            raise FlvError(f"unknown audio FourCC {payload[1:5]!r}")
        return AudioPacket(codec, pkt == AUDIO_PKT_SEQUENCE_START, bytes(payload[5:]),
                           control=pkt not in (AUDIO_PKT_SEQUENCE_START, AUDIO_PKT_CODED_FRAMES))
    if fmt == SOUND_AAC:
        if len(payload) < 2:
            raise FlvError("truncated AAC audio header")
        return AudioPacket("aac", payload[1] == 0, bytes(payload[2:]))
    if fmt == 2:
        return AudioPacket("mp3", False, bytes(payload[1:]))
    raise FlvError(f"unsupported sound format {fmt}")


def _si24_bytes(v: int) -> bytes:
    return (v & 0xFFFFFF).to_bytes(3, "big")


def video_payload(codec: str, *, keyframe: bool, sequence_header: bool = False, end: bool = False,
                  composition_time: int = 0, data: bytes = b"") -> bytes:
    """A video tag body: legacy AVC for H.264, Enhanced RTMP for everything else."""
    frame_type = FRAME_KEY if keyframe or sequence_header else FRAME_INTER
    if codec == "h264":
        pkt = 0 if sequence_header else 2 if end else 1
        return bytes(((frame_type << 4) | CODEC_AVC, pkt)) + _si24_bytes(composition_time) + data
    fourcc = VIDEO_FOURCC.get(codec)
    if fourcc is None:
        raise FlvError(f"no FLV mapping for video codec {codec}")
    if sequence_header:
        pkt = PKT_SEQUENCE_START
    elif end:
        pkt = PKT_SEQUENCE_END
    elif codec == "h265" and composition_time:
        pkt = PKT_CODED_FRAMES
    elif codec == "h265":
        pkt = PKT_CODED_FRAMES_X  # no composition time field when it is zero
    else:
        pkt = PKT_CODED_FRAMES
    head = bytes((0x80 | (frame_type << 4) | pkt,)) + fourcc
    if pkt == PKT_CODED_FRAMES and codec == "h265":
        head += _si24_bytes(composition_time)
    return head + data


def audio_payload(codec: str, *, sequence_header: bool = False, data: bytes = b"") -> bytes:
    if codec == "aac":
        # AAC tags always say 44 kHz, 16 bit, stereo; the real values are in the AudioSpecificConfig.
        return bytes((0xAF, 0 if sequence_header else 1)) + data
    fourcc = AUDIO_FOURCC.get(codec)
    if fourcc is None:
        raise FlvError(f"no FLV mapping for audio codec {codec}")
    pkt = AUDIO_PKT_SEQUENCE_START if sequence_header else AUDIO_PKT_CODED_FRAMES
    return bytes(((SOUND_EX_HEADER << 4) | pkt,)) + fourcc + data


# -- NAL units ---------------------------------------------------------------------------------

def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    if i < 0:
        return [data] if data else []
    while i >= 0:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j < 0 else j
        nal = data[start:end]
        # A 4-byte start code leaves its leading zero on the previous unit: trailing zeros are not NAL data.
        nal = nal.rstrip(b"\x00") if j >= 0 else nal
        if nal:
            nals.append(nal)
        i = j
    return nals


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    nals: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        if pos + length_size > n:
            raise FlvError("truncated NAL unit length")
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size > n - pos:
            raise FlvError(f"NAL unit of {size} bytes runs past the frame")
        nals.append(data[pos : pos + size])
        pos += size
    return nals


def to_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def to_length_prefixed(nals: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


def h264_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def h265_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if nal else 0


# -- AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) ------------------------------------

@dataclass(frozen=True, slots=True)
class AvcConfig:
    length_size: int
    sps: list[bytes]
    pps: list[bytes]


def parse_avc_config(record: bytes) -> AvcConfig:
    if len(record) < 7 or record[0] != 1:
        raise FlvError("not an AVCDecoderConfigurationRecord")
    length_size = (record[4] & 0x03) + 1
    if length_size == 3:
        raise FlvError("AVC NAL length size 3 is not allowed")
    pos = 5
    out: list[list[bytes]] = [[], []]
    for which in (0, 1):
        if pos >= len(record):
            raise FlvError("truncated AVCDecoderConfigurationRecord")
        count = record[pos] & (0x1F if which == 0 else 0xFF)
        pos += 1
        for _ in range(count):
            if pos + 2 > len(record):
                raise FlvError("truncated AVCDecoderConfigurationRecord")
            size = int.from_bytes(record[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(record):
                raise FlvError("truncated parameter set in AVCDecoderConfigurationRecord")
            out[which].append(bytes(record[pos : pos + size]))
            pos += size
    return AvcConfig(length_size, out[0], out[1])


def make_avc_config(sps: list[bytes], pps: list[bytes]) -> bytes:
    if not sps or len(sps[0]) < 4:
        raise FlvError("an AVC decoder configuration needs an SPS")
    first = sps[0]
    out = bytearray((1, first[1], first[2], first[3], 0xFC | 3, 0xE0 | len(sps)))
    for ps in sps:
        out += struct.pack(">H", len(ps)) + ps
    out.append(len(pps))
    for ps in pps:
        out += struct.pack(">H", len(ps)) + ps
    return bytes(out)


# -- AV1CodecConfigurationRecord (AV1 in ISOBMFF 2.3) and VPCodecConfigurationRecord (VP codecs in ISOBMFF 2.2)

@dataclass(frozen=True, slots=True)
class PictureConfig:
    """What a player needs to know before the first AV1/VP9 frame; the record itself is passed on as is."""

    profile: int
    level: int
    bit_depth: int


def parse_av1_config(record: bytes) -> PictureConfig:
    """av1C: marker 1 + version 1, seq_profile/level, tier/bit depth/chroma flags, then configOBUs."""
    if len(record) < 4 or record[0] != 0x81:
        raise FlvError("not an AV1CodecConfigurationRecord (marker 1, version 1)")
    high_bitdepth, twelve_bit = (record[2] >> 6) & 1, (record[2] >> 5) & 1
    return PictureConfig(record[1] >> 5, record[1] & 0x1F, 12 if twelve_bit else 10 if high_bitdepth else 8)


def parse_vp9_config(record: bytes) -> PictureConfig:
    """vpcC as its box carries it (Enhanced RTMP sends it so): version 1 and flags, then 8 bytes and init data."""
    if len(record) < 12 or record[0] != 1:
        raise FlvError("not a VPCodecConfigurationRecord (version 1)")
    init_size = int.from_bytes(record[10:12], "big")
    if 12 + init_size > len(record):
        raise FlvError("truncated VPCodecConfigurationRecord")
    return PictureConfig(record[4], record[5], record[6] >> 4)


# -- HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) -----------------------------------

@dataclass(frozen=True, slots=True)
class HevcConfig:
    length_size: int
    vps: list[bytes]
    sps: list[bytes]
    pps: list[bytes]


def parse_hevc_config(record: bytes) -> HevcConfig:
    if len(record) < 23 or record[0] != 1:
        raise FlvError("not an HEVCDecoderConfigurationRecord")
    length_size = (record[21] & 0x03) + 1
    arrays = record[22]
    pos = 23
    sets: dict[int, list[bytes]] = {32: [], 33: [], 34: []}
    for _ in range(arrays):
        if pos + 3 > len(record):
            raise FlvError("truncated HEVCDecoderConfigurationRecord")
        nal_type = record[pos] & 0x3F
        count = int.from_bytes(record[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(record):
                raise FlvError("truncated HEVCDecoderConfigurationRecord")
            size = int.from_bytes(record[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(record):
                raise FlvError("truncated parameter set in HEVCDecoderConfigurationRecord")
            sets.setdefault(nal_type, []).append(bytes(record[pos : pos + size]))
            pos += size
    return HevcConfig(length_size, sets[32], sets[33], sets[34])


def _unescape(nal: bytes) -> bytes:
    """RBSP from a NAL unit: drop emulation prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def make_hevc_config(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    if not sps:
        raise FlvError("an HEVC decoder configuration needs an SPS")
    rbsp = _unescape(sps[0][2:])  # after the 2-byte NAL header
    # profile_tier_level's general part is byte aligned right after the first SPS byte: copy its 12 bytes.
    ptl = rbsp[1:13].ljust(12, b"\x00")
    out = bytearray((1,))
    out += ptl  # profile space/tier/idc, 4 compatibility bytes, 6 constraint bytes, general_level_idc
    out += b"\xf0\x00"  # min_spatial_segmentation_idc = 0
    out += b"\xfc"  # parallelismType = 0
    out += b"\xfd"  # chroma_format_idc = 1 (4:2:0)
    out += b"\xf8"  # bit_depth_luma_minus8 = 0
    out += b"\xf8"  # bit_depth_chroma_minus8 = 0
    out += b"\x00\x00"  # avgFrameRate
    out += bytes((0x0F,))  # constantFrameRate 0, numTemporalLayers 1, temporalIdNested 1, lengthSizeMinusOne 3
    arrays = [(32, vps), (33, sps), (34, pps)]
    arrays = [(t, sets) for t, sets in arrays if sets]
    out.append(len(arrays))
    for nal_type, sets in arrays:
        out += bytes((0x80 | nal_type,)) + struct.pack(">H", len(sets))
        for ps in sets:
            out += struct.pack(">H", len(ps)) + ps
    return bytes(out)


# -- FLV file and tags (HTTP-FLV) -------------------------------------------------------------

TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT = 8, 9, 18


def file_header(*, audio: bool, video: bool) -> bytes:
    flags = (4 if audio else 0) | (1 if video else 0)
    return b"FLV\x01" + bytes((flags,)) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"  # + PreviousTagSize0


def tag(tag_type: int, timestamp: int, payload: bytes) -> bytes:
    """One FLV tag followed by its PreviousTagSize."""
    size = len(payload)
    if size > 0xFFFFFF:
        raise FlvError("FLV tag payload over 16 MiB")
    ts = timestamp & 0xFFFFFFFF
    head = struct.pack(">I", (tag_type << 24) | size) + struct.pack(">I", ((ts & 0xFFFFFF) << 8) | (ts >> 24))
    return head + b"\x00\x00\x00" + payload + struct.pack(">I", size + 11)


@dataclass(frozen=True, slots=True)
class Tag:
    tag_type: int
    timestamp: int
    payload: bytes


class TagReader:
    """Reads an FLV stream (header, then tags) incrementally, with a bound on tag size."""

    def __init__(self, *, max_tag_size: int = 8 << 20) -> None:
        self._buf = bytearray()
        self._header_done = False
        self.max_tag_size = max_tag_size

    def feed(self, data: bytes) -> list[Tag]:
        self._buf += data
        out: list[Tag] = []
        if not self._header_done:
            if len(self._buf) < 13:
                return out
            if self._buf[:3] != b"FLV":
                raise FlvError("not an FLV stream")
            offset = int.from_bytes(self._buf[5:9], "big")
            if offset < 9 or offset > 1024:
                raise FlvError("bad FLV header size")
            if len(self._buf) < offset + 4:
                return out
            del self._buf[: offset + 4]
            self._header_done = True
        pos = 0
        while len(self._buf) - pos >= 11:
            tag_type = self._buf[pos] & 0x1F
            size = int.from_bytes(self._buf[pos + 1 : pos + 4], "big")
            if size > self.max_tag_size:
                raise FlvError(f"FLV tag of {size} bytes is over the limit")
            if len(self._buf) - pos < 11 + size + 4:
                break
            ts = int.from_bytes(self._buf[pos + 4 : pos + 7], "big") | (self._buf[pos + 7] << 24)
            out.append(Tag(tag_type, ts, bytes(self._buf[pos + 11 : pos + 11 + size])))
            pos += 11 + size + 4
        del self._buf[:pos]
        return out
