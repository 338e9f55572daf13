"""FLV tags, codec records and the access unit mapping both ways; fuzzing of the tag parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.media import AccessUnit, TrackInfo
from hivecast.rtmp import flv
from hivecast.rtmp.errors import FlvError
from hivecast.rtmp.mapping import FlvToUnits, UnitsToFlv, parse_audio_specific_config

SPS = bytes.fromhex("6742c01e95a0a0fd00f0088462a0")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("6588840021") + b"\x11" * 50
P = bytes.fromhex("419a0e") + b"\x22" * 30
ASC = bytes.fromhex("1190")  # AAC LC, 48 kHz, stereo
VPS = bytes.fromhex("40010c01ffff016000000300900000030000030078959809")
HSPS = bytes.fromhex("420101016000000300900000030000030078a003c08010e59654924cc0")
HPPS = bytes.fromhex("4401c172b46240")


def test_avc_config_round_trip() -> None:
    rec = flv.make_avc_config([SPS], [PPS])
    cfg = flv.parse_avc_config(rec)
    assert cfg.sps == [SPS] and cfg.pps == [PPS] and cfg.length_size == 4
    assert rec[1:4] == SPS[1:4]


def test_hevc_config_round_trip() -> None:
    rec = flv.make_hevc_config([VPS], [HSPS], [HPPS])
    cfg = flv.parse_hevc_config(rec)
    assert (cfg.vps, cfg.sps, cfg.pps, cfg.length_size) == ([VPS], [HSPS], [HPPS], 4)
    assert rec[1] == 0x01 and rec[12] == 0x78  # Main profile, level 4 copied from the SPS


def test_asc() -> None:
    assert parse_audio_specific_config(ASC) == (48000, 2)
    assert parse_audio_specific_config(bytes.fromhex("1210")) == (44100, 2)
    with pytest.raises(FlvError):
        parse_audio_specific_config(b"\x17\x80")


def test_annexb_conversions() -> None:
    data = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR
    assert flv.split_annexb(data) == [SPS, PPS, IDR]
    lp = flv.to_length_prefixed([SPS, IDR])
    assert flv.split_length_prefixed(lp) == [SPS, IDR]
    with pytest.raises(FlvError):
        flv.split_length_prefixed(b"\x00\x00\x01\x00ab")


def test_video_payloads_legacy_and_enhanced() -> None:
    legacy = flv.video_payload("h264", keyframe=True, composition_time=-40, data=b"abc")
    pkt = flv.parse_video(legacy)
    assert (pkt.codec, pkt.keyframe, pkt.composition_time, pkt.data) == ("h264", True, -40, b"abc")
    ex = flv.video_payload("h265", keyframe=False, composition_time=80, data=b"xyz")
    assert ex[0] & 0x80 and ex[1:5] == b"hvc1"
    pkt = flv.parse_video(ex)
    assert (pkt.codec, pkt.keyframe, pkt.composition_time, pkt.data) == ("h265", False, 80, b"xyz")
    x = flv.parse_video(flv.video_payload("h265", keyframe=True, data=b"k"))  # CodedFramesX: no cts field
    assert x.data == b"k" and x.keyframe and x.composition_time == 0
    seq = flv.parse_video(flv.video_payload("av1", keyframe=True, sequence_header=True, data=b"\x81"))
    assert seq.codec == "av1" and seq.sequence_header
    with pytest.raises(FlvError, match="multitrack"):
        flv.parse_video(bytes((0x80 | 0x10 | 6,)) + b"hvc1")


def test_audio_payloads() -> None:
    a = flv.parse_audio(flv.audio_payload("aac", sequence_header=True, data=ASC))
    assert a.codec == "aac" and a.sequence_header and a.data == ASC
    o = flv.parse_audio(flv.audio_payload("opus", data=b"\xfc\x00"))
    assert o.codec == "opus" and not o.sequence_header


def test_flv_tags_round_trip() -> None:
    stream = flv.file_header(audio=True, video=True) + flv.tag(9, 0x01020304, b"v" * 10) + flv.tag(8, 5, b"a")
    r = flv.TagReader()
    tags = [t for i in range(len(stream)) for t in r.feed(stream[i : i + 1])]
    assert [(t.tag_type, t.timestamp, t.payload) for t in tags] == [(9, 0x01020304, b"v" * 10), (8, 5, b"a")]


def test_ingest_and_egress_h264_aac() -> None:
    ingest = FlvToUnits()
    ingest.set_metadata({"videocodecid": 7.0, "audiocodecid": 10.0, "width": 320.0, "height": 240.0})
    assert ingest.video(1000, flv.video_payload("h264", keyframe=True, sequence_header=True,
                                                data=flv.make_avc_config([SPS], [PPS]))) is None
    assert not ingest.ready
    ingest.audio(1000, flv.audio_payload("aac", sequence_header=True, data=ASC))
    assert ingest.ready
    tracks = ingest.tracks()
    assert [(t.codec, t.clock_rate) for t in tracks] == [("h264", 90000), ("aac", 48000)]
    assert tracks[0].width == 320 and tracks[0].sps == SPS
    key = ingest.video(1000, flv.video_payload("h264", keyframe=True, composition_time=40,
                                               data=flv.to_length_prefixed([IDR])))
    assert key is not None and key.keyframe and key.dts == 0 and key.pts == 40 * 90
    assert flv.split_annexb(key.data) == [SPS, PPS, IDR]  # parameter sets in band on keyframes
    a1 = ingest.audio(1000, flv.audio_payload("aac", data=b"\x21" * 10))
    a2 = ingest.audio(1021, flv.audio_payload("aac", data=b"\x21" * 10))
    assert a1 is not None and a2 is not None and a2.pts - a1.pts == 1024  # exact sample count kept

    egress = UnitsToFlv(tracks)
    assert len(egress.headers()) == 2
    msgs = egress.convert(key)
    assert msgs[-1].keyframe
    vid = flv.parse_video(msgs[-1].payload)
    assert vid.composition_time == 40 and vid.keyframe
    p = egress.convert(AccessUnit(0, "h264", 2 * 3600, 3600, 90000, False, b"\x00\x00\x00\x01" + P))
    assert p[0].timestamp == 40 and not p[0].keyframe
    aud = egress.convert(a2)
    assert aud[0].type_id == 8 and aud[0].payload[:2] == b"\xaf\x01"
    assert aud[0].flv_tag()[:1] == b"\x08" and aud[0].rtmp(1, 4096) is aud[0].rtmp(1, 4096)


def test_egress_h265_from_in_band_parameter_sets() -> None:
    egress = UnitsToFlv([TrackInfo(0, "h265", 90000)])
    au = AccessUnit(0, "h265", 0, 0, 90000, True, flv.to_annexb([VPS, HSPS, HPPS, b"\x26\x01" + b"\x00" * 20]))
    msgs = egress.convert(au)
    assert len(msgs) == 2 and flv.parse_video(msgs[0].payload).sequence_header
    cfg = flv.parse_hevc_config(flv.parse_video(msgs[0].payload).data)
    assert cfg.vps == [VPS]
    ingest = FlvToUnits()
    ingest.video(0, msgs[0].payload)
    back = ingest.video(0, msgs[1].payload)
    assert back is not None and back.codec == "h265" and back.keyframe


# Sequence starts as ffmpeg 9 writes them in Enhanced FLV (libsvtav1 320x240, libvpx-vp9 320x240).
AV1C = bytes.fromhex("81000c000a0b0200000521e7fde017c0") + b"\x10"
VPCC = bytes.fromhex("010000000014820202020000")


@pytest.mark.parametrize(("codec", "record", "frame"), [
    ("av1", AV1C, bytes.fromhex("12000a0b0200000521e7fde257c80232")),
    ("vp9", VPCC, bytes.fromhex("824983420013f00ef60638241c184a00")),
])
def test_av1_and_vp9_ride_through_the_registry_form(codec: str, record: bytes, frame: bytes) -> None:
    ingest = FlvToUnits()
    ingest.set_metadata({"videocodecid": float(int.from_bytes(flv.VIDEO_FOURCC[codec], "big")),
                         "width": 320.0, "height": 240.0})
    assert ingest.video(500, flv.video_payload(codec, keyframe=True, sequence_header=True, data=record)) is None
    assert ingest.ready
    (track,) = ingest.tracks()
    assert (track.codec, track.kind, track.config, track.width) == (codec, "video", record, 320)
    key = ingest.video(500, flv.video_payload(codec, keyframe=True, data=frame))
    inter = ingest.video(540, flv.video_payload(codec, keyframe=False, data=frame[:5]))
    assert key is not None and inter is not None
    assert (key.codec, key.keyframe, key.data, key.pts, key.dts) == (codec, True, frame, 0, 0)
    assert not inter.keyframe and inter.pts == inter.dts == 40 * 90

    egress = UnitsToFlv([track])
    (header,) = egress.headers()
    parsed = flv.parse_video(header.payload)
    assert (parsed.codec, parsed.sequence_header, parsed.data) == (codec, True, record)
    (msg,) = egress.convert(inter)
    back = flv.parse_video(msg.payload)
    assert (back.codec, back.keyframe, back.data, msg.timestamp) == (codec, False, frame[:5], 40)


def test_av1_and_vp9_records_are_checked() -> None:
    assert flv.parse_av1_config(AV1C) == flv.PictureConfig(0, 0, 8)
    assert flv.parse_vp9_config(VPCC) == flv.PictureConfig(0, 20, 8)
    with pytest.raises(FlvError):
        flv.parse_av1_config(b"\x01\x00\x0c\x00")
    with pytest.raises(FlvError):
        flv.parse_vp9_config(VPCC[:10] + b"\x00\x05")  # init data longer than the record
    with pytest.raises(FlvError):
        FlvToUnits().video(0, flv.video_payload("vp9", keyframe=True, sequence_header=True, data=b"\x00" * 12))


@given(st.binary(max_size=200))
@settings(max_examples=400, deadline=None)
def test_tag_parsers_fuzz(data: bytes) -> None:
    for parse in (flv.parse_video, flv.parse_audio, flv.parse_avc_config, flv.parse_hevc_config,
                  flv.parse_av1_config, flv.parse_vp9_config):
        try:
            parse(data)
        except FlvError:
            pass
    ingest = FlvToUnits()
    for fn in (ingest.video, ingest.audio):
        try:
            fn(0, data)
        except FlvError:
            pass
    try:
        flv.TagReader(max_tag_size=1000).feed(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + data)
    except FlvError:
        pass
