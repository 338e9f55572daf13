"""The BMFF reader: real PyAV output parses; arbitrary bytes raise BoxError only."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.media.packaging.bmff import BoxError, iter_boxes, parse_fragment, parse_init
from hivecast.media.packaging.fragments import FragmentMuxer
from hivecast.media.packaging.ladder import LadderError, parse_ladder
from hivecast.media.packaging.segmenter import CutCursor, LiveCutter, plan_cuts


def encoded_packets(n: int = 20) -> tuple[object, list[av.Packet]]:
    import io

    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"})
    s = out.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.codec_context.options = {"preset": "ultrafast", "x264-params": "keyint=5:scenecut=0"}
    out.start_encoding()  # fills the stream parameters (avcC) the fragment muxer copies
    packets = []
    for i in range(n):
        frame = av.VideoFrame(64, 48, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([i * 10 % 256]) * plane.buffer_size)
        frame.pts = i
        packets.extend(s.encode(frame))
    packets.extend(s.encode(None))
    return s, packets


def test_fragments_are_stamped_on_the_timeline() -> None:
    stream, packets = encoded_packets()
    muxer = FragmentMuxer(stream, origin=Fraction(0))
    a = muxer.mux(packets[:10])
    b = muxer.mux(packets[10:])
    assert muxer.init is not None
    (track,) = parse_init(muxer.init)
    assert track.handler == "vide" and track.codecs.startswith("avc1.") and (track.width, track.height) == (64, 48)
    assert a.decode_time == 0 and a.first_sync and a.samples == 10
    assert b.decode_time == a.duration  # the second fragment starts where the first ended
    frag = parse_fragment(b.data)
    assert frag.sequence == 2 and frag.tracks[0].decode_time == b.decode_time


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_box_error(data: bytes) -> None:
    for parse in (parse_init, parse_fragment):
        try:
            parse(data)
        except BoxError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
def test_mutated_real_fragments_only_raise_box_error(position: int, garbage: bytes) -> None:
    stream, packets = encoded_packets(6)
    muxer = FragmentMuxer(stream)
    frag = bytearray(muxer.mux(packets).data)
    init = bytearray(muxer.init or b"")
    for blob in (frag, init):
        pos = position % len(blob)
        blob[pos:pos + len(garbage)] = garbage
        for parse in (parse_init, parse_fragment):
            try:
                parse(bytes(blob))
            except BoxError:
                pass


def test_a_trun_without_sample_fields_cannot_declare_billions_of_samples() -> None:
    stream, packets = encoded_packets(6)
    muxer = FragmentMuxer(stream)
    frag = bytearray(muxer.mux(packets).data)
    trun = frag.index(b"trun")
    # flags 0 (no per-sample fields, no data offset): the sample table takes no bytes at all.
    frag[trun + 4:trun + 12] = struct.pack(">II", 0, 0xFFFFFFFF)
    with pytest.raises(BoxError, match="samples"):
        parse_fragment(bytes(frag))


def test_box_sizes_are_checked() -> None:
    with pytest.raises(BoxError):
        list(iter_boxes(struct.pack(">I4s", 100, b"moof")))
    with pytest.raises(BoxError):
        list(iter_boxes(struct.pack(">I4s", 4, b"moof")))
    big = struct.pack(">I4sQ", 1, b"mdat", 24) + b"x" * 8
    assert [b.type for b in iter_boxes(big)] == [b"mdat"]


def test_plan_cuts_on_keyframes() -> None:
    keys = [0.0, 2.0, 4.0, 6.0, 8.0, 9.0, 13.5]
    assert plan_cuts(keys, 4.0) == [0.0, 4.0, 8.0, 13.5]
    assert plan_cuts([0.0, 3.99, 8.0], 4.0) == [0.0, 3.99, 8.0]  # within tolerance
    cursor = CutCursor([4.0, 8.0])
    assert [cursor.is_cut(t) for t in (1.0, 4.0, 5.0, 9.0)] == [False, True, False, True]
    cutter = LiveCutter(2.0)
    assert [cutter.is_cut(t, k) for t, k in ((0, True), (1, True), (2, False), (2.1, True))] == [True, False, False, True]


def test_ladder_parsing() -> None:
    rungs = parse_ladder("240p,720p,480p@900k")
    assert [r.name for r in rungs] == ["720p", "480p", "240p"]
    assert rungs[1].bitrate == 900_000
    assert rungs[0].size_for(1920, 1080) == (1280, 720)
    for bad in ("720", "p720", "720p@", "99999p", "720p@1k"):
        with pytest.raises(LadderError):
            parse_ladder(bad)


def _sps_of(width: int, height: int, profile: str) -> bytes:
    import io

    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"})
    s = out.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    s.codec_context.options = {"preset": "ultrafast", "profile": profile}
    out.start_encoding()
    extradata = bytes(s.codec_context.extradata or b"")
    # Annex-B extradata from libx264: the first NAL unit is the SPS.
    nals = [n for n in extradata.split(b"\x00\x00\x01") if n]
    return next(n.rstrip(b"\x00") for n in nals if n[0] & 0x1F == 7)


@pytest.mark.parametrize(("width", "height", "profile"), [(320, 180, "baseline"), (1920, 1080, "high"),
                                                          (426, 240, "main"), (64, 48, "high444")])
def test_sps_size(width: int, height: int, profile: str) -> None:
    from hivecast.media.packaging.h264 import sps_size

    assert sps_size(_sps_of(width, height, profile)) == (width, height)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_sps_parser_only_raises_sps_error(data: bytes) -> None:
    from hivecast.media.packaging.h264 import SpsError, sps_size

    for blob in (data, b"\x67" + data):
        try:
            sps_size(blob)
        except SpsError:
            pass
