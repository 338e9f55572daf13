"""The chunk stream: every header form, extended timestamps, interleaving, control messages, limits, fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtmp import chunk
from hivecast.rtmp.chunk import ChunkReader, ChunkWriter, Message, encode_message
from hivecast.rtmp.errors import ChunkError


def feed_bytewise(reader: ChunkReader, data: bytes) -> list[Message]:
    out: list[Message] = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    return out


@pytest.mark.parametrize("csid", [2, 63, 64, 319, 320, 65599])
def test_basic_header_ranges(csid: int) -> None:
    data = encode_message(csid, 9, 1, 40, b"v" * 300, 128)
    msgs = feed_bytewise(ChunkReader(), data)
    assert msgs == [Message(9, 1, 40, b"v" * 300, csid)]


def test_basic_header_out_of_range() -> None:
    with pytest.raises(ValueError):
        chunk.basic_header(0, 65600)


def test_writer_uses_compressed_headers_and_reader_follows() -> None:
    w = ChunkWriter(128)
    msgs = [Message(8, 1, t, bytes([t % 256]) * 10, 4) for t in (0, 20, 40, 60)]  # type 0, 2(?), 3, 3
    msgs += [Message(8, 1, 80, b"x" * 200, 4), Message(9, 1, 81, b"y" * 5, 4), Message(8, 2, 90, b"z", 4)]
    wire = [w.write(m) for m in msgs]
    fmts = [b[0] >> 6 for b in wire]
    assert fmts[0] == 0 and fmts[1] == 2 and fmts[2] == 3 and fmts[3] == 3
    assert fmts[4] == 1 and fmts[6] == 0
    assert ChunkReader().feed(b"".join(wire)) == msgs


def test_extended_timestamps_in_all_forms() -> None:
    w = ChunkWriter(64)
    base = 0x01000000
    msgs = [Message(9, 1, base, b"a" * 150, 6), Message(9, 1, base + 33, b"b" * 150, 6),
            Message(9, 1, base + 33 + 0x1000000, b"c" * 10, 6)]
    data = b"".join(w.write(m) for m in msgs)
    r = ChunkReader()
    r.chunk_size = 64
    assert feed_bytewise(r, data) == msgs
    # encode_message repeats the extended timestamp in type 3 chunks, as ffmpeg and nginx do.
    one = encode_message(6, 9, 1, 0xFFFFFFF0, b"q" * 300, 128)
    assert ChunkReader().feed(one) == [Message(9, 1, 0xFFFFFFF0, b"q" * 300, 6)]


def test_interleaved_chunk_streams() -> None:
    a = encode_message(4, 8, 1, 10, b"A" * 300, 128)
    v = encode_message(6, 9, 1, 10, b"V" * 300, 128)
    # Split both into chunks and interleave them: A0 V0 A1 V1 A2 V2.
    a_chunks = [a[:12 + 128], a[140:141 + 128], a[269:]]
    v_chunks = [v[:12 + 128], v[140:141 + 128], v[269:]]
    wire = b"".join(x for pair in zip(a_chunks, v_chunks, strict=True) for x in pair)
    msgs = ChunkReader().feed(wire)
    assert [(m.csid, m.payload) for m in msgs] == [(4, b"A" * 300), (6, b"V" * 300)]


def test_set_chunk_size_and_abort() -> None:
    r = ChunkReader()
    w = ChunkWriter(128)
    wire = w.write(chunk.set_chunk_size(4096))
    big = encode_message(6, 9, 1, 0, b"x" * 4000, 4096)
    assert r.feed(wire + big) == [Message(9, 1, 0, b"x" * 4000, 6)]
    assert r.chunk_size == 4096
    # A partial message, then Abort on its chunk stream, then a fresh message.
    r2 = ChunkReader()
    partial = encode_message(6, 9, 1, 0, b"y" * 300, 128)[:140]
    r2.feed(partial)
    r2.feed(ChunkWriter().write(chunk.abort(6)))
    assert r2.feed(encode_message(6, 9, 1, 5, b"z", 128)) == [Message(9, 1, 5, b"z", 6)]


def test_control_message_builders() -> None:
    r = ChunkReader()
    w = ChunkWriter()
    msgs = [chunk.acknowledgement(5), chunk.window_ack_size(2_500_000), chunk.set_peer_bandwidth(1000, 2),
            chunk.user_control(chunk.PING_REQUEST, 77)]
    got = r.feed(b"".join(w.write(m) for m in msgs))
    assert [m.type_id for m in got] == [3, 5, 6, 4]
    assert got[3].payload == struct.pack(">HI", 6, 77)


def test_limits() -> None:
    with pytest.raises(ChunkError, match="over the limit"):
        ChunkReader(max_message_size=1000).feed(encode_message(6, 9, 1, 0, b"x" * 2000, 4096))
    with pytest.raises(ChunkError, match="chunk size"):
        ChunkReader(max_chunk_size=65536).feed(ChunkWriter().write(chunk.set_chunk_size(0x7FFFFFFF)))
    with pytest.raises(ChunkError, match="invalid chunk size"):
        ChunkReader().feed(ChunkWriter().write(Message(1, 0, 0, b"\x80\x00\x00\x00", 2)))
    r = ChunkReader(max_chunk_streams=4)
    with pytest.raises(ChunkError, match="chunk streams"):
        for csid in range(2, 10):
            r.feed(encode_message(csid, 9, 1, 0, b"x" * 200, 128)[:140])
    with pytest.raises(ChunkError, match="starts with a type"):
        ChunkReader().feed(b"\xc3" + b"x" * 10)
    r = ChunkReader(max_message_size=1 << 20, max_pending_bytes=4096)
    with pytest.raises(ChunkError, match="partly received"):
        for csid in range(2, 60):
            r.feed(encode_message(csid, 9, 1, 0, b"x" * 100_000, 128)[:140])


messages = st.lists(st.builds(Message, st.sampled_from([8, 9, 18, 20]), st.integers(0, 5),
                              st.integers(0, 2**32 - 1), st.binary(max_size=700), st.sampled_from([3, 4, 6, 70, 400])),
                    max_size=8)


@given(messages, st.sampled_from([1, 128, 500, 4096]), st.integers(1, 97))
@settings(max_examples=150, deadline=None)
def test_writer_reader_round_trip(msgs: list[Message], size: int, step: int) -> None:
    w = ChunkWriter(128)
    wire = w.write(chunk.set_chunk_size(size))
    w.chunk_size = size
    wire += b"".join(w.write(m) for m in msgs)
    r = ChunkReader()
    got: list[Message] = []
    for i in range(0, len(wire), step):
        got += r.feed(wire[i : i + step])
    assert got == msgs


@given(st.binary(max_size=2000))
@settings(max_examples=500, deadline=None)
def test_reader_fuzz(data: bytes) -> None:
    r = ChunkReader(max_message_size=1 << 16, max_chunk_size=1 << 16)
    try:
        r.feed(data)
    except ChunkError:
        pass
