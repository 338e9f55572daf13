"""H.264 (RFC 6184) and AAC (RFC 3640) packetization round trips, loss handling and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtp import PayloadError
from hivecast.rtp.aac import AacDepacketizer, AacPacketizer, AudioSpecificConfig
from hivecast.rtp.h264 import (
    FU_A,
    STAP_A,
    H264Depacketizer,
    H264Packetizer,
    annexb_join,
    annexb_split,
    parse_sprop_parameter_sets,
    sprop_parameter_sets,
)

SPS = bytes.fromhex("6742c01e95a0")
PPS = bytes.fromhex("68ce3c80")


def test_annexb_split_join() -> None:
    nals = [SPS, PPS, b"\x65" + b"\x11" * 50]
    assert annexb_split(annexb_join(nals)) == nals
    assert annexb_split(b"\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS) == [SPS, PPS]


def test_small_nals_aggregate_into_stap_a_and_big_ones_fragment() -> None:
    idr = b"\x65" + bytes(range(256)) * 20
    payloads = H264Packetizer(mtu=1000).packetize([SPS, PPS, idr])
    assert payloads[0][0][0] & 0x1F == STAP_A
    assert all(p[0] & 0x1F == FU_A for p, _ in payloads[1:])
    assert [m for _, m in payloads] == [False] * (len(payloads) - 1) + [True]
    assert all(len(p) <= 1000 for p, _ in payloads)
    dep = H264Depacketizer()
    aus = [au for seq, (p, m) in enumerate(payloads) for au in dep.push(p, 9000, m, seq)]
    assert len(aus) == 1 and aus[0].nals == [SPS, PPS, idr] and aus[0].keyframe and aus[0].timestamp == 9000


def test_lost_fragment_drops_only_that_nal() -> None:
    big = b"\x41" + b"\x22" * 3000
    payloads = H264Packetizer(mtu=1000).packetize([big])
    dep = H264Depacketizer()
    out = []
    for seq, (p, m) in enumerate(payloads):
        if seq == 1:
            continue
        out += dep.push(p, 1, m, seq)
    assert out == [] and dep.dropped_nals >= 1
    nxt = H264Packetizer().packetize([b"\x41\x01\x02"])
    out = dep.push(nxt[0][0], 2, True, len(payloads))
    assert len(out) == 1 and out[0].nals == [b"\x41\x01\x02"]


def test_timestamp_change_ends_access_unit_without_marker() -> None:
    dep = H264Depacketizer()
    assert dep.push(b"\x41\x01", 1, False) == []
    out = dep.push(b"\x41\x02", 2, False)
    assert [au.timestamp for au in out] == [1]


def test_sprop_round_trip() -> None:
    assert parse_sprop_parameter_sets(sprop_parameter_sets(SPS, PPS)) == [SPS, PPS]


def test_aac_round_trip_and_fragmentation() -> None:
    asc = AudioSpecificConfig(2, 48000, 2)
    assert AudioSpecificConfig.parse(asc.serialize()) == asc
    assert asc.serialize().hex() == "1190"
    pk, dep = AacPacketizer(mtu=500), AacDepacketizer()
    small = b"\x21" * 300
    big = bytes(range(256)) * 6
    out = []
    seq = 0
    for ts, frame in ((0, small), (1024, big)):
        for payload, marker in pk.packetize(frame):
            out += dep.push(payload, ts, marker, seq)
            seq += 1
    assert [(f.timestamp, f.data) for f in out] == [(0, small), (1024, big)]


def test_aac_multiple_frames_in_one_packet() -> None:
    frames = [b"\x01" * 10, b"\x02" * 20]
    headers = b"".join(((len(f) << 3).to_bytes(2, "big")) for f in frames)
    payload = (16 * len(frames)).to_bytes(2, "big") + headers + b"".join(frames)
    out = AacDepacketizer().push(payload, 5000, True)
    assert [(f.timestamp, f.data) for f in out] == [(5000, frames[0]), (6024, frames[1])]


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x0f\x00", b"\x00\x20\x00\x08\x00\x08\x01", b"\x00\x00"])
def test_bad_aac_payloads(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        AacDepacketizer().push(payload, 0, True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_h264_depacketizer(payloads: list[bytes]) -> None:
    dep = H264Depacketizer()
    for i, p in enumerate(payloads):
        try:
            dep.push(p, i // 3, i % 3 == 2, i)
        except PayloadError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_aac_depacketizer(payloads: list[bytes]) -> None:
    dep = AacDepacketizer()
    for i, p in enumerate(payloads):
        try:
            dep.push(p, i * 1024, True, i)
        except PayloadError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=2, max_size=3000).map(lambda b: bytes(((b[0] % 8 + 1) | 0x40,)) + b[1:]),
                min_size=1, max_size=6), st.integers(200, 1400))
def test_fuzz_h264_round_trip(nals: list[bytes], mtu: int) -> None:
    dep = H264Depacketizer()
    payloads = H264Packetizer(mtu).packetize(nals)
    aus = [au for seq, (p, m) in enumerate(payloads) for au in dep.push(p, 7, m, seq)]
    assert len(aus) == 1 and aus[0].nals == nals


def h265_nal(kind: int, body: bytes) -> bytes:
    return bytes(((kind << 1) & 0x7E, 0x01)) + body


def test_h265_aggregation_fragmentation_round_trip() -> None:
    from hivecast.rtp import h265

    vps, sps, pps = h265_nal(32, b"\x0c" * 20), h265_nal(33, b"\x01" * 30), h265_nal(34, b"\xc1" * 6)
    idr = h265_nal(19, bytes(range(256)) * 12)
    payloads = h265.H265Packetizer(mtu=800).packetize([vps, sps, pps, idr])
    assert h265.nal_type(payloads[0][0]) == h265.AP
    assert all(h265.nal_type(p) == h265.FU for p, _ in payloads[1:])
    assert all(len(p) <= 800 for p, _ in payloads) and payloads[-1][1]
    dep = h265.H265Depacketizer()
    aus = [au for seq, (p, m) in enumerate(payloads) for au in dep.push(p, 3000, m, seq)]
    assert len(aus) == 1 and aus[0].nals == [vps, sps, pps, idr] and h265.is_keyframe(aus[0].nals)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_h265_depacketizer(payloads: list[bytes]) -> None:
    from hivecast.rtp.h265 import H265Depacketizer

    dep = H265Depacketizer()
    for i, p in enumerate(payloads):
        try:
            dep.push(p, i // 3, i % 3 == 2, i)
        except PayloadError:
            pass
