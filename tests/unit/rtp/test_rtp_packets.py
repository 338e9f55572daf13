"""RTP and RTCP wire format: round trips, RFC 8285 extensions, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtp import HeaderExtension, MalformedPacket, RtpPacket, is_rtcp
from hivecast.rtp.rtcp import (
    App,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    SdesChunk,
    SenderReport,
    SourceDescription,
    parse_compound,
    serialize_compound,
)


def test_rtp_round_trip_with_csrc_extension_and_padding() -> None:
    ext = HeaderExtension.from_elements({1: b"\x01\x02", 3: b"abc"})
    pkt = RtpPacket(96, 65535, 0xFFFFFFFF, 0x1234, b"payload", marker=True, csrc=[1, 2], extension=ext, padding=3)
    wire = pkt.serialize()
    assert wire[0] >> 6 == 2 and wire[0] & 0x30 == 0x30 and wire[0] & 0x0F == 2
    back = RtpPacket.parse(wire)
    assert back.payload == b"payload" and back.marker and back.csrc == [1, 2]
    assert back.sequence_number == 65535 and back.timestamp == 0xFFFFFFFF
    assert back.extension is not None and back.extension.elements() == {1: b"\x01\x02", 3: b"abc"}


def test_two_byte_extension_elements() -> None:
    ext = HeaderExtension.from_elements({20: b"x" * 20})
    assert ext.profile & 0xFFF0 == 0x1000
    back = RtpPacket.parse(RtpPacket(96, 1, 2, 3, b"", extension=ext).serialize())
    assert back.extension is not None and back.extension.elements() == {20: b"x" * 20}


@pytest.mark.parametrize("wire", [b"", b"\x80", b"\x40" + b"\x00" * 11, b"\x8f" + b"\x00" * 11,
                                  b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x05", b"\xa0" + b"\x00" * 11])
def test_malformed_rtp(wire: bytes) -> None:
    with pytest.raises(MalformedPacket):
        RtpPacket.parse(wire)


def test_rtcp_compound_round_trip() -> None:
    block = ReportBlock(0xAA, 12, -3, 70000, 45, 0x11223344, 65536)
    packets = [
        SenderReport(1, 0x0123456789ABCDEF, 90000, 10, 1000, [block]),
        ReceiverReport(2, [block, block]),
        SourceDescription([SdesChunk(1, [(1, b"hivecast@example")]), SdesChunk(2, [])]),
        Bye([1, 2], b"done"),
        App(3, 9, b"TEST", b"\x00\x01\x02\x03"),
        RtcpUnknown(205, 1, b"\x00" * 8),
    ]
    back = parse_compound(serialize_compound(packets))
    assert back == packets
    assert is_rtcp(packets[0].serialize()) and not is_rtcp(RtpPacket(96, 1, 1, 1).serialize())


@pytest.mark.parametrize("wire", [b"\x80\xc8", b"\x80\xc8\x00\x10" + b"\x00" * 8, b"\x40\xc9\x00\x01\x00\x00\x00\x00",
                                  b"\x81\xc9\x00\x01\x00\x00\x00\x00", b"\x81\xca\x00\x01\x00\x00\x00\x01",
                                  b"\x80\x60\x00\x00"])
def test_malformed_rtcp(wire: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_compound(wire)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_rtp_parse_never_crashes(data: bytes) -> None:
    try:
        pkt = RtpPacket.parse(data)
    except MalformedPacket:
        return
    if pkt.extension is not None:
        try:
            pkt.extension.elements()
        except MalformedPacket:
            pass
    assert RtpPacket.parse(pkt.serialize()).payload == pkt.payload


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_rtcp_parse_never_crashes(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except MalformedPacket:
        return
    assert len(packets) >= 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(ReportBlock, st.integers(0, 2**32 - 1), st.integers(0, 255),
                          st.integers(-(2**23), 2**23 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                max_size=31), st.integers(0, 2**32 - 1))
def test_fuzz_report_round_trip(blocks: list[ReportBlock], ssrc: int) -> None:
    rr = ReceiverReport(ssrc, blocks)
    assert parse_compound(rr.serialize()) == [rr]
