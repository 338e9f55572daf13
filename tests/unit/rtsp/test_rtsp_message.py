"""RTSP message framing, SDP and Transport parsing, with fuzzing and limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtsp.errors import MessageTooLarge, ProtocolError, SdpError, UnsupportedTransport
from hivecast.rtsp.message import Headers, InterleavedFrame, MessageParser, Request, Response, interleaved
from hivecast.rtsp.sdp import SessionDescription, resolve_control
from hivecast.rtsp.transport import parse_transport

FFMPEG_SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat\r\n"
    "m=video 0 RTP/AVP 96\r\nb=AS:200\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHpWg,aM48gA==; profile-level-id=42C01E\r\n"
    "a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"
    "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=119056E500\r\n"
    "a=control:streamid=1\r\n"
)


def test_request_round_trip_with_body_and_interleaved() -> None:
    req = Request("ANNOUNCE", "rtsp://h/x", Headers([("CSeq", "2"), ("Content-Type", "application/sdp")]),
                  FFMPEG_SDP.encode())
    parser = MessageParser()
    wire = req.serialize() + interleaved(1, b"\x80\xc8abc") + b"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    events = []
    for i in range(0, len(wire), 7):  # arbitrary split points
        events += parser.feed(wire[i : i + 7])
    assert isinstance(events[0], Request) and events[0].body == req.body and events[0].cseq == "2"
    assert events[1] == InterleavedFrame(1, b"\x80\xc8abc")
    assert isinstance(events[2], Request) and events[2].method == "OPTIONS"


def test_response_parse() -> None:
    (resp,) = MessageParser().feed(Response(454, Headers({"CSeq": "9"})).serialize())
    assert isinstance(resp, Response) and resp.status == 454 and resp.reason == "Session Not Found"


@pytest.mark.parametrize("wire", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", b"GET / HTTP/1.1\r\n\r\n",
                                  b"OPTIONS *\r\n\r\n", b"OPTIONS * RTSP/1.0\r\nbad line\r\n\r\n",
                                  b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n"])
def test_garbage_is_a_protocol_error(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        MessageParser().feed(wire)


def test_limits() -> None:
    with pytest.raises(MessageTooLarge):
        MessageParser(max_header_bytes=1024).feed(b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 2000)
    with pytest.raises(MessageTooLarge):
        MessageParser(max_body_bytes=10).feed(b"ANNOUNCE x RTSP/1.0\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(MessageTooLarge):
        MessageParser(max_headers=4).feed(b"OPTIONS * RTSP/1.0\r\n" + b"A: b\r\n" * 5 + b"\r\n")


def test_sdp_from_ffmpeg() -> None:
    sd = SessionDescription.parse(FFMPEG_SDP.encode())
    video, audio = sd.media
    assert video.rtpmap() == ("H264", 90000, None) and video.control == "streamid=0"
    assert video.fmtp()["sprop-parameter-sets"] == "Z0LAHpWg,aM48gA=="
    assert audio.rtpmap() == ("MPEG4-GENERIC", 48000, 2) and audio.fmtp()["config"] == "119056E500"
    assert SessionDescription.parse(sd.serialize()) == sd
    assert resolve_control("rtsp://h/live/x", "streamid=1") == "rtsp://h/live/x/streamid=1"


@pytest.mark.parametrize("text", [b"", b"x=0", b"v=0\r\nm=video\r\n", b"v=0\r\nbad\r\n", b"\xff\xfe"])
def test_bad_sdp(text: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(text)


def test_transport_alternatives() -> None:
    specs = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001;mode=record")
    assert specs[0].tcp and specs[0].interleaved == (0, 1)
    assert not specs[1].tcp and specs[1].client_port == (5000, 5001) and specs[1].mode == "record"
    assert parse_transport(specs[1].serialize())[0] == specs[1]
    with pytest.raises(UnsupportedTransport):
        parse_transport("RAW/RAW/UDP;unicast")
    with pytest.raises(UnsupportedTransport):
        parse_transport("RTP/AVP;client_port=99999")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_message_parser(data: bytes) -> None:
    parser = MessageParser(max_header_bytes=512, max_body_bytes=512)
    try:
        parser.feed(data)
    except ProtocolError:
        pass
    assert parser.buffered <= 512 + 600


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "X_Y"]), st.text("abc/:.=?0123456789", min_size=1, max_size=40),
       st.lists(st.tuples(st.text("ABCabc-", min_size=1, max_size=10), st.text("xyz 0123;=", max_size=20)), max_size=8),
       st.binary(max_size=50))
def test_fuzz_request_round_trip(method: str, uri: str, headers: list[tuple[str, str]], body: bytes) -> None:
    headers = [(k, v.strip()) for k, v in headers if k.lower() != "content-length"]
    req = Request(method, uri, Headers(headers), body)
    (back,) = MessageParser().feed(req.serialize())
    assert isinstance(back, Request) and back.method == method and back.uri == uri and back.body == body
    assert [(k, v) for k, v in back.headers if k.lower() != "content-length"] == headers


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_sdp(text: str) -> None:
    try:
        sd = SessionDescription.parse(("v=0\n" + text).encode())
    except SdpError:
        return
    for m in sd.media:
        try:
            m.rtpmap()
        except SdpError:
            pass
        m.fmtp()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_transport(text: str) -> None:
    try:
        parse_transport(text)
    except UnsupportedTransport:
        pass


def test_describe_round_trips_every_codec() -> None:
    from hivecast.media.live import TrackInfo
    from hivecast.rtsp.describe import describe, tracks_from_sdp

    tracks = [TrackInfo(0, "h264", 90000, sps=bytes.fromhex("6742c01e95a0"), pps=bytes.fromhex("68ce3c80")),
              TrackInfo(1, "aac", 48000, config=bytes.fromhex("1190"), channels=2),
              TrackInfo(2, "h265", 90000, vps=b"\x40\x01\x0c", sps=b"\x42\x01\x01", pps=b"\x44\x01\xc1"),
              TrackInfo(3, "opus", 48000, channels=2)]
    back = tracks_from_sdp(SessionDescription.parse(describe(tracks).serialize()))
    assert [t.info for t in back] == tracks
    assert [t.control for t in back] == [f"trackID={i}" for i in range(4)]
