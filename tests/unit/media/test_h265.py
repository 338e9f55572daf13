"""H.265 profile/tier/level, codecs strings and picture size, from parameter sets libx265 wrote.

The constants were taken from ffmpeg's output (`ffmpeg -f lavfi -i testsrc2=size=WxH:rate=30
-frames:v 2 -pix_fmt FMT -c:v libx265 -preset ultrafast -f hevc`), and the hvcC record from the
same stream muxed by ffmpeg into MP4 (`-c copy -tag:v hvc1`): ffmpeg builds that record from the
VPS/SPS/PPS, so both derivations of the codecs string must agree.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.media.packaging.h264 import SpsError
from hivecast.media.packaging.h265 import ProfileTierLevel, parse_sps, ptl_from_hvcc

MAIN_320x240 = bytes.fromhex(
    "42010101600000030090000003000003003ca00a080f16595952930bc05a020000030002000003003c10")
MAIN10_1920x1080 = bytes.fromhex(
    "420101022000000300900000030000030078a003c0801107cad965654a4c2f016808000003000800000300f040")
MAIN444_1280x720 = bytes.fromhex(
    "4201010408000003009e0800000300005d9000501005a2cb2b2a5261780b4040000003004000000782")
# The hvcC body ffmpeg's mp4 muxer wrote for the 320x240 Main stream (VPS, SPS and PPS arrays).
HVCC_320x240 = bytes.fromhex(
    "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c"
    "959409a10001002a42010101600000030090000003000003003ca00a080f16595952930bc05a020000030002000003003c"
    "10a2000100064401c073c189")


@pytest.mark.parametrize(("sps", "codecs", "size", "chroma", "depth"), [
    (MAIN_320x240, "hvc1.1.6.L60.90", (320, 240), 1, 8),
    # 1080 lines are coded as 1088 and cropped by the conformance window
    (MAIN10_1920x1080, "hvc1.2.4.L120.90", (1920, 1080), 1, 10),
    (MAIN444_1280x720, "hvc1.4.10.L93.9E.8", (1280, 720), 3, 8),
])
def test_real_sps(sps: bytes, codecs: str, size: tuple[int, int], chroma: int, depth: int) -> None:
    parsed = parse_sps(sps)
    assert parsed.ptl.codecs() == codecs
    assert (parsed.width, parsed.height) == size
    assert parsed.chroma_format_idc == chroma
    assert parsed.bit_depth_luma == parsed.bit_depth_chroma == depth


def test_hvcc_and_sps_give_the_same_codecs() -> None:
    from_hvcc = ptl_from_hvcc(HVCC_320x240)
    assert from_hvcc == parse_sps(MAIN_320x240).ptl
    assert from_hvcc.codecs("hev1") == "hev1.1.6.L60.90"


def test_codecs_string_fields() -> None:
    # ISO/IEC 14496-15 E.3's own example: Main profile, Main tier, level 3.1, progressive + frame only.
    main = ProfileTierLevel(0, 0, 1, 0x60000000, bytes([0xB0, 0, 0, 0, 0, 0]), 93)
    assert main.codecs("hev1") == "hev1.1.6.L93.B0"
    # Profile space B, High tier, every constraint byte set but the last.
    high = ProfileTierLevel(2, 1, 2, 0x20000000, bytes([0x90, 1, 2, 3, 4, 0]), 153)
    assert high.codecs() == "hvc1.B2.4.H153.90.1.2.3.4"
    assert ProfileTierLevel(0, 0, 1, 0, bytes(6), 30).codecs() == "hvc1.1.0.L30"


@pytest.mark.parametrize("nal", [b"", b"\x42\x01", MAIN_320x240[:10], b"\x40\x01" + MAIN_320x240[2:],
                                 MAIN_320x240[:2] + b"\xff" * 40])
def test_garbage_is_refused(nal: bytes) -> None:
    with pytest.raises(SpsError):
        parse_sps(nal)


def test_bad_hvcc_is_refused() -> None:
    with pytest.raises(SpsError):
        ptl_from_hvcc(HVCC_320x240[:12])
    with pytest.raises(SpsError):
        ptl_from_hvcc(b"\x02" + HVCC_320x240[1:])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_sps(tail: bytes) -> None:
    for nal in (tail, MAIN_320x240[:2] + tail):
        try:
            sps = parse_sps(nal)
        except SpsError:
            continue
        assert 0 < sps.width <= 16888 and 0 < sps.height <= 16888
        assert sps.ptl.codecs().startswith("hvc1.")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=len(MAIN10_1920x1080) - 1), st.integers(0, 255))
def test_fuzz_corrupted_real_sps(position: int, value: int) -> None:
    nal = bytearray(MAIN10_1920x1080)
    nal[position] = value
    try:
        parse_sps(bytes(nal))
    except SpsError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_hvcc(record: bytes) -> None:
    try:
        codecs = ptl_from_hvcc(record).codecs()
    except SpsError:
        return
    assert codecs.count(".") >= 3
