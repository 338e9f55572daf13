"""Tracks to SDP and back: what DESCRIBE answers and what ANNOUNCE (or a pulled DESCRIBE) means."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from hivecast.media.live import TrackInfo
from hivecast.rtp import PayloadError
from hivecast.rtp.aac import AudioSpecificConfig
from hivecast.rtp.aac import fmtp as aac_fmtp
from hivecast.rtp.h264 import (
    NAL_PPS,
    NAL_SPS,
    parse_sprop_parameter_sets,
    profile_level_id,
    sprop_parameter_sets,
)
from hivecast.rtsp.errors import SdpError
from hivecast.rtsp.sdp import MediaDescription, SessionDescription

VIDEO_PT = 96
AUDIO_PT = 97
OPUS_PT = 111


def control_for(track_id: int) -> str:
    return f"trackID={track_id}"


def describe(tracks: list[TrackInfo], *, name: str = "hivecast", origin_ip: str = "127.0.0.1") -> SessionDescription:
    sd = SessionDescription(origin=f"- 0 0 IN IP4 {origin_ip}", name=name, connection="IN IP4 0.0.0.0",
                            attributes=[("control", "*"), ("range", "npt=now-")])
    for t in tracks:
        if t.codec == "h264":
            fmtp = "packetization-mode=1"
            if t.sps:
                fmtp += f"; profile-level-id={profile_level_id(t.sps)}"
                if t.pps:
                    fmtp += f"; sprop-parameter-sets={sprop_parameter_sets(t.sps, t.pps)}"
            sd.media.append(MediaDescription("video", 0, "RTP/AVP", [str(VIDEO_PT)], [
                ("rtpmap", f"{VIDEO_PT} H264/90000"), ("fmtp", f"{VIDEO_PT} {fmtp}"),
                ("control", control_for(t.id))]))
        elif t.codec == "h265":
            sprops = "; ".join(f"sprop-{k}={base64.b64encode(v).decode()}"
                               for k, v in (("vps", t.vps), ("sps", t.sps), ("pps", t.pps)) if v)
            attrs: list[tuple[str, str | None]] = [("rtpmap", f"{VIDEO_PT} H265/90000")]
            if sprops:
                attrs.append(("fmtp", f"{VIDEO_PT} {sprops}"))
            attrs.append(("control", control_for(t.id)))
            sd.media.append(MediaDescription("video", 0, "RTP/AVP", [str(VIDEO_PT)], attrs))
        elif t.codec == "opus":
            sd.media.append(MediaDescription("audio", 0, "RTP/AVP", [str(OPUS_PT)], [
                ("rtpmap", f"{OPUS_PT} opus/48000/2"),
                ("fmtp", f"{OPUS_PT} sprop-stereo={1 if t.channels == 2 else 0}"), ("control", control_for(t.id))]))
        elif t.codec == "aac":
            sd.media.append(MediaDescription("audio", 0, "RTP/AVP", [str(AUDIO_PT)], [
                ("rtpmap", f"{AUDIO_PT} MPEG4-GENERIC/{t.clock_rate}/{t.channels or 2}"),
                ("fmtp", f"{AUDIO_PT} {aac_fmtp(t.config)}"), ("control", control_for(t.id))]))
    return sd


@dataclass(slots=True)
class AnnouncedTrack:
    """One m= section of a publisher's (or pulled) description and what we make of it."""

    index: int
    control: str | None
    payload_type: int
    info: TrackInfo | None  # None: a codec we do not carry; its packets are discarded


def tracks_from_sdp(sd: SessionDescription) -> list[AnnouncedTrack]:
    out: list[AnnouncedTrack] = []
    for index, m in enumerate(sd.media):
        info: TrackInfo | None = None
        try:
            pt = m.payload_type
            encoding, rate, channels = m.rtpmap()
        except SdpError:
            out.append(AnnouncedTrack(index, m.control, -1, None))
            continue
        fmtp = m.fmtp()
        encoding = encoding.upper()
        try:
            if m.media == "video" and encoding == "H264":
                sps = pps = b""
                for ps in parse_sprop_parameter_sets(fmtp.get("sprop-parameter-sets", "")):
                    if ps and ps[0] & 0x1F == NAL_SPS:
                        sps = ps
                    elif ps and ps[0] & 0x1F == NAL_PPS:
                        pps = ps
                info = TrackInfo(index, "h264", rate, sps=sps, pps=pps)
            elif m.media == "video" and encoding == "H265":
                vps, sps, pps = (_b64(fmtp.get(f"sprop-{k}", "")) for k in ("vps", "sps", "pps"))
                info = TrackInfo(index, "h265", rate, sps=sps, pps=pps, vps=vps)
            elif m.media == "audio" and encoding == "OPUS" and rate == 48000:
                stereo = fmtp.get("sprop-stereo", fmtp.get("stereo", "")) == "1"
                info = TrackInfo(index, "opus", 48000, channels=2 if stereo or channels == 2 else 1)
            elif m.media == "audio" and encoding == "MPEG4-GENERIC" and fmtp.get("mode", "").lower() == "aac-hbr":
                config = bytes.fromhex(fmtp.get("config", ""))
                asc = AudioSpecificConfig.parse(config)
                info = TrackInfo(index, "aac", rate, config=config, channels=channels or asc.channels)
        except (PayloadError, ValueError):
            info = None
        out.append(AnnouncedTrack(index, m.control, pt, info))
    return out


def _b64(value: str) -> bytes:
    value = value.strip().split(",")[0]
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4)) if value else b""
    except (binascii.Error, ValueError):
        raise PayloadError("bad base64 parameter set") from None
