"""RTMP/FLV media <-> `hivecast.media.AccessUnit`, sans I/O (MediaMTX calls these to_stream/from_stream).

Ingest (`FlvToUnits`): FLV video/audio payloads with RTMP millisecond timestamps become access
units in the registry's documented form: H.264/H.265 as Annex-B with the parameter sets in band
on every keyframe, AV1 temporal units and VP9 frames as they come (their av1C/vpcC record is the
track's config), AAC as raw frames, Opus as packets; video on a 90 kHz clock, audio on its
sample rate. Timestamps are unwrapped past 2^32 ms and rebased so the stream starts near zero.

Egress (`UnitsToFlv`): access units become `FlvMessage`s (sequence headers built from the
in-band or `TrackInfo` parameter sets, length-prefixed NAL units with composition time offsets;
AV1/VP9 sequence starts from the track's record, frames as they are).
A `FlvMessage` serializes itself once per form (RTMP chunks for a message stream id, FLV tag)
and keeps the bytes, so every reader of a stream shares one serialization.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hivecast.media import AccessUnit, TrackInfo
from hivecast.rtmp import amf0, flv
from hivecast.rtmp.chunk import AUDIO, DATA_AMF0, VIDEO, encode_message
from hivecast.rtmp.errors import FlvError

log = logging.getLogger(__name__)

VIDEO_TRACK, AUDIO_TRACK = 0, 1
VIDEO_CLOCK = 90_000
NAL_CODECS = ("h264", "h265")
RECORD_CODECS = ("av1", "vp9")  # frames pass through; the sequence start is a configuration record
VIDEO_CODECS = NAL_CODECS + RECORD_CODECS
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
# Shared media goes on chunk streams the per-connection ChunkWriter never uses, so header compression
# state on the command streams is never disturbed by type-0 media chunks.
CSID_MEDIA = {AUDIO: 4, VIDEO: 6, DATA_AMF0: 7}


def parse_audio_specific_config(asc: bytes) -> tuple[int, int]:
    """(sample rate, channels) of an AAC AudioSpecificConfig."""
    if len(asc) < 2:
        raise FlvError("AudioSpecificConfig shorter than 2 bytes")
    bits = int.from_bytes(asc[:5].ljust(5, b"\x00"), "big")
    n = 40
    obj = (bits >> (n - 5)) & 0x1F
    n -= 5
    if obj == 31:
        n -= 6
    index = (bits >> (n - 4)) & 0x0F
    n -= 4
    if index == 15:
        rate = (bits >> (n - 24)) & 0xFFFFFF
        n -= 24
    elif index < len(AAC_RATES):
        rate = AAC_RATES[index]
    else:
        raise FlvError(f"reserved AAC sampling frequency index {index}")
    channels = (bits >> (n - 4)) & 0x0F if n >= 4 else 0
    if rate <= 0:
        raise FlvError("AAC sample rate 0")
    return rate, channels


class _Unwrap:
    """32-bit millisecond timestamps -> monotonic-ish 64-bit ones."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.offset = 0

    def __call__(self, ts: int) -> int:
        if self.last is not None and ts < self.last and self.last - ts > 0x80000000:
            self.offset += 1 << 32
        self.last = ts
        return ts + self.offset


class FlvToUnits:
    """One publisher's FLV payloads -> access units; `tracks()` once the sequence headers are in."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.video_config = b""
        self.audio_config = b""
        self.audio_ready = False  # a sequence header arrived (Opus may come without a usable one)
        self.params: list[bytes] = []  # parameter sets (VPS, SPS, PPS) to put in band on keyframes
        self.vps = b""
        self.sps = b""
        self.pps = b""
        self.length_size = 4
        self.sample_rate = 0
        self.channels = 0
        self.saw_video = False
        self.saw_audio = False
        self.unsupported: set[str] = set()
        self._unwrap = _Unwrap()
        self._base: int | None = None
        self._next_audio: int | None = None
        self._audio_frame = 1024

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    @property
    def expects_video(self) -> bool:
        return self.saw_video or "videocodecid" in self.metadata

    @property
    def expects_audio(self) -> bool:
        return self.saw_audio or "audiocodecid" in self.metadata

    @property
    def ready(self) -> bool:
        """Every announced track has its configuration: time to go live."""
        has_any = bool(self.video_config) or self.audio_ready
        video_ok = bool(self.video_config) or not self.expects_video
        audio_ok = self.audio_ready or not self.expects_audio
        return has_any and video_ok and audio_ok

    def tracks(self) -> list[TrackInfo]:
        out: list[TrackInfo] = []
        width = int(self.metadata.get("width") or 0) if isinstance(self.metadata.get("width"), float) else 0
        height = int(self.metadata.get("height") or 0) if isinstance(self.metadata.get("height"), float) else 0
        if self.video_config and self.video_codec in RECORD_CODECS:
            out.append(TrackInfo(VIDEO_TRACK, "av1" if self.video_codec == "av1" else "vp9", VIDEO_CLOCK,
                                 config=self.video_config, width=width, height=height))
        elif self.video_config and self.video_codec in NAL_CODECS:
            out.append(TrackInfo(VIDEO_TRACK, "h264" if self.video_codec == "h264" else "h265", VIDEO_CLOCK,
                                 sps=self.sps, pps=self.pps,
                                 config=self.video_config if self.video_codec == "h265" else b"",
                                 width=width, height=height, vps=self.vps if self.video_codec == "h265" else b""))
        if self.audio_ready and self.audio_codec in ("aac", "opus"):
            out.append(TrackInfo(AUDIO_TRACK, "aac" if self.audio_codec == "aac" else "opus", self.sample_rate,
                                 config=self.audio_config,
                                 channels=self.channels))
        return out

    def _ts(self, ts: int) -> int:
        t = self._unwrap(ts)
        if self._base is None:
            self._base = t
        return max(0, t - self._base)

    def video(self, timestamp: int, payload: bytes) -> AccessUnit | None:
        pkt = flv.parse_video(payload)
        self.saw_video = True
        if pkt.command or pkt.end_of_sequence:
            return None
        if pkt.codec not in VIDEO_CODECS:
            if pkt.codec not in self.unsupported:
                self.unsupported.add(pkt.codec)
                log.warning("RTMP video codec %s is not carried into the live registry", pkt.codec)
            return None
        if pkt.sequence_header:
            if pkt.codec == "av1":
                flv.parse_av1_config(pkt.data)
            elif pkt.codec == "vp9":
                flv.parse_vp9_config(pkt.data)
            self.video_codec = pkt.codec
            self.video_config = pkt.data
            if pkt.codec in RECORD_CODECS:
                return None
            if pkt.codec == "h264":
                avc = flv.parse_avc_config(pkt.data)
                self.length_size = avc.length_size
                self.params = avc.sps + avc.pps
                self.sps = avc.sps[0] if avc.sps else b""
                self.pps = avc.pps[0] if avc.pps else b""
            else:
                hevc = flv.parse_hevc_config(pkt.data)
                self.length_size = hevc.length_size
                self.params = hevc.vps + hevc.sps + hevc.pps
                self.vps = hevc.vps[0] if hevc.vps else b""
                self.sps = hevc.sps[0] if hevc.sps else b""
                self.pps = hevc.pps[0] if hevc.pps else b""
            return None
        if not self.video_config or pkt.codec != self.video_codec:
            return None  # frames before their sequence header cannot be decoded
        dts = self._ts(timestamp) * 90
        if pkt.codec in RECORD_CODECS:
            # No reordering in FLV for these: a frame's presentation time is its tag time.
            return AccessUnit(VIDEO_TRACK, "av1" if pkt.codec == "av1" else "vp9", dts, dts, VIDEO_CLOCK,
                              pkt.keyframe, pkt.data)
        nals = flv.split_length_prefixed(pkt.data, self.length_size)
        if pkt.keyframe and self.params:
            kind = flv.h264_type if pkt.codec == "h264" else flv.h265_type
            param_types = {7, 8} if pkt.codec == "h264" else {32, 33, 34}
            if not any(kind(n) in param_types for n in nals):
                nals = self.params + nals
        pts = dts + pkt.composition_time * 90
        return AccessUnit(VIDEO_TRACK, "h264" if pkt.codec == "h264" else "h265", pts, dts, VIDEO_CLOCK, pkt.keyframe, flv.to_annexb(nals))

    def audio(self, timestamp: int, payload: bytes) -> AccessUnit | None:
        pkt = flv.parse_audio(payload)
        self.saw_audio = True
        if pkt.control:
            return None
        if pkt.codec not in ("aac", "opus"):
            if pkt.codec not in self.unsupported:
                self.unsupported.add(pkt.codec)
                log.warning("RTMP audio codec %s is not carried into the live registry", pkt.codec)
            return None
        if pkt.sequence_header:
            self.audio_codec = pkt.codec
            self.audio_ready = True
            if pkt.codec == "aac":
                self.audio_config = pkt.data
                self.sample_rate, self.channels = parse_audio_specific_config(pkt.data)
                self._audio_frame = 1024
            else:
                self.audio_config = pkt.data  # the Opus ID header ("OpusHead..."), when the publisher sends one
                self.sample_rate = 48000
                self.channels = pkt.data[9] if len(pkt.data) > 9 else 2
                self._audio_frame = 960
            return None
        if pkt.codec == "opus" and not self.audio_ready:
            # Opus needs no configuration to decode: a missing sequence start is tolerated.
            self.audio_codec, self.audio_ready, self.sample_rate, self.channels = "opus", True, 48000, 2
        if not self.audio_ready or pkt.codec != self.audio_codec:
            return None
        rate = self.sample_rate
        ticks = self._ts(timestamp) * rate // 1000
        # RTMP rounds audio times to whole milliseconds; keep the sample count exact while it agrees.
        if self._next_audio is not None and abs(ticks - self._next_audio) <= rate // 1000 + 1:
            ticks = self._next_audio
        self._next_audio = ticks + self._audio_frame
        return AccessUnit(AUDIO_TRACK, "aac" if pkt.codec == "aac" else "opus", ticks, ticks, rate, False, pkt.data)


@dataclass(slots=True, eq=False)
class FlvMessage:
    """One audio/video/data message, serialized lazily once per form and shared by every reader."""

    type_id: int
    timestamp: int
    payload: bytes
    keyframe: bool = False
    _rtmp: dict[tuple[int, int], bytes] = field(default_factory=dict)
    _tag: bytes | None = None

    def rtmp(self, stream_id: int, chunk_size: int) -> bytes:
        key = (stream_id, chunk_size)
        data = self._rtmp.get(key)
        if data is None:
            data = self._rtmp[key] = encode_message(CSID_MEDIA[self.type_id], self.type_id, stream_id,
                                                    self.timestamp, self.payload, chunk_size)
        return data

    def flv_tag(self) -> bytes:
        if self._tag is None:
            self._tag = flv.tag(self.type_id, self.timestamp, self.payload)
        return self._tag


def metadata_message(tracks: list[TrackInfo], extra: dict[str, Any] | None = None) -> FlvMessage:
    meta: dict[str, Any] = {"server": "hivecast"}
    for t in tracks:
        if t.kind == "video":
            meta["videocodecid"] = 7.0 if t.codec == "h264" else float(int.from_bytes(flv.VIDEO_FOURCC[t.codec], "big"))
            if t.width:
                meta["width"], meta["height"] = float(t.width), float(t.height)
        else:
            meta["audiocodecid"] = 10.0 if t.codec == "aac" else float(int.from_bytes(b"Opus", "big"))
            meta["audiosamplerate"] = float(t.clock_rate)
            meta["stereo"] = t.channels != 1
    if extra:
        for key in ("framerate", "videodatarate", "audiodatarate", "encoder"):
            if key in extra:
                meta[key] = extra[key]
    return FlvMessage(DATA_AMF0, 0, amf0.encode("onMetaData", amf0.EcmaArray(meta)))


class UnitsToFlv:
    """Access units of one stream -> FLV messages; new sequence headers when parameter sets change."""

    def __init__(self, tracks: list[TrackInfo]) -> None:
        self.tracks = {t.id: t for t in tracks}
        self.video_header: FlvMessage | None = None
        self.audio_header: FlvMessage | None = None
        self._params: tuple[bytes, ...] = ()
        for t in tracks:
            if t.kind == "audio" and t.codec == "aac" and t.config:
                self.audio_header = FlvMessage(AUDIO, 0, flv.audio_payload("aac", sequence_header=True, data=t.config))
            elif t.kind == "audio" and t.codec == "opus":
                self.audio_header = FlvMessage(AUDIO, 0, flv.audio_payload("opus", sequence_header=True,
                                                                            data=t.config or b""))
            elif t.codec == "h264" and t.sps and t.pps:
                self._params = (t.sps, t.pps)
                self.video_header = FlvMessage(VIDEO, 0, flv.video_payload(
                    "h264", keyframe=True, sequence_header=True, data=flv.make_avc_config([t.sps], [t.pps])), True)
            elif t.codec == "h265" and (t.config or (t.sps and t.pps)):
                record = t.config or flv.make_hevc_config([t.vps] if t.vps else [], [t.sps], [t.pps])
                if t.sps and t.pps:
                    self._params = tuple(([t.vps] if t.vps else []) + [t.sps, t.pps])
                self.video_header = FlvMessage(VIDEO, 0, flv.video_payload(
                    "h265", keyframe=True, sequence_header=True, data=record), True)
            elif t.codec in RECORD_CODECS and t.config:
                self.video_header = FlvMessage(VIDEO, 0, flv.video_payload(
                    t.codec, keyframe=True, sequence_header=True, data=t.config), True)

    def headers(self) -> list[FlvMessage]:
        return [m for m in (self.video_header, self.audio_header) if m is not None]

    def convert(self, au: AccessUnit) -> list[FlvMessage]:
        out: list[FlvMessage] = []
        tb = au.timebase or 1
        ts = au.dts * 1000 // tb
        if au.codec in ("h264", "h265"):
            nals = flv.split_annexb(au.data)
            if au.codec == "h264":
                sps = [n for n in nals if flv.h264_type(n) == 7]
                pps = [n for n in nals if flv.h264_type(n) == 8]
                frame = [n for n in nals if flv.h264_type(n) not in (9,)]
                params = tuple(sps[:1] + pps[:1])
                if sps and pps and params != self._params:
                    self._params = params
                    self.video_header = FlvMessage(VIDEO, ts, flv.video_payload(
                        "h264", keyframe=True, sequence_header=True, data=flv.make_avc_config(sps[:1], pps[:1])), True)
                    out.append(self.video_header)
            else:
                vps = [n for n in nals if flv.h265_type(n) == 32]
                sps = [n for n in nals if flv.h265_type(n) == 33]
                pps = [n for n in nals if flv.h265_type(n) == 34]
                frame = [n for n in nals if flv.h265_type(n) != 35]
                params = tuple(vps[:1] + sps[:1] + pps[:1])
                if sps and pps and params != self._params:
                    self._params = params
                    self.video_header = FlvMessage(VIDEO, ts, flv.video_payload(
                        "h265", keyframe=True, sequence_header=True,
                        data=flv.make_hevc_config(vps[:1], sps[:1], pps[:1])), True)
                    out.append(self.video_header)
            if self.video_header is None or not frame:
                return out  # nothing decodable before the parameter sets
            cts = (au.pts - au.dts) * 1000 // tb
            out.append(FlvMessage(VIDEO, ts, flv.video_payload(
                au.codec, keyframe=au.keyframe, composition_time=cts, data=flv.to_length_prefixed(frame)), au.keyframe))
        elif au.codec in RECORD_CODECS:
            if self.video_header is not None:
                out.append(FlvMessage(VIDEO, ts, flv.video_payload(au.codec, keyframe=au.keyframe, data=au.data),
                                      au.keyframe))
        elif au.codec in ("aac", "opus"):
            if self.audio_header is None:
                return out
            out.append(FlvMessage(AUDIO, ts, flv.audio_payload(au.codec, data=au.data)))
        return out
