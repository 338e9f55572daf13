"""Frames: serializer/parser round trips, every single-frame rule, and fuzzed input never escaping
the error hierarchy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.ws.errors import MessageTooBig, PeerProtocolError
from hivecast.ws.frames import (
    _SMALL,
    Frame,
    FrameParser,
    apply_mask,
    close_code_valid_on_wire,
    close_payload,
    encode_frame,
    mask_slice,
    parse_close_payload,
    serialize_frame,
)

MASK = b"\x37\xfa\x21\x3d"


def parse_all(data: bytes, *, masked: bool = True, max_size: int = 1 << 20, rsv1: bool = False) -> list[Frame]:
    p = FrameParser(expect_masked=masked, max_frame_size=max_size, allowed_rsv1=rsv1)
    p.feed(data)
    out = []
    while (f := p.next_frame()) is not None:
        out.append(f)
    return out


def test_rfc_example_masked_hello() -> None:
    # RFC 6455 section 5.7: a single-frame masked text message "Hello"
    raw = bytes.fromhex("818537fa213d7f9f4d5158")
    [f] = parse_all(raw)
    assert f.opcode == 1 and f.fin and f.data == b"Hello"
    assert encode_frame(1, b"Hello", mask=MASK) == raw


def test_rfc_example_unmasked_and_lengths() -> None:
    assert encode_frame(1, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(2, b"x" * 256)[:4] == bytes.fromhex("827e0100")
    assert encode_frame(2, b"x" * 65536)[:10] == bytes.fromhex("827f0000000000010000")


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_length_encodings_round_trip(n: int) -> None:
    data = bytes(range(256)) * (n // 256 + 1)
    data = data[:n]
    [f] = parse_all(encode_frame(2, data, mask=MASK))
    assert f.data == data


def test_byte_by_byte_feeding() -> None:
    raw = encode_frame(1, b"split me", mask=MASK) + encode_frame(9, b"p", mask=MASK)
    p = FrameParser(expect_masked=True, max_frame_size=100)
    got = []
    for b in raw:
        p.feed(bytes([b]))
        while (f := p.next_frame()) is not None:
            got.append(f)
    assert [(f.opcode, f.data) for f in got] == [(1, b"split me"), (9, b"p")]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (bytes([0x81 | 0x20, 0x80]) + MASK, "rsv2"),
        (bytes([0x81 | 0x40, 0x80]) + MASK, "rsv1 without deflate"),
        (bytes([0x83, 0x80]) + MASK, "reserved opcode 3"),
        (bytes([0x8B, 0x80]) + MASK, "reserved control opcode"),
        (bytes([0x09, 0x80]) + MASK, "fragmented ping"),
        (bytes([0x89, 0xFE, 0x00, 0x7E]) + MASK, "ping over 125"),
        (bytes([0x81, 0x00]), "unmasked client frame"),
        (bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK, "64-bit length top bit"),
    ],
)
def test_invalid_frames_are_protocol_errors(raw: bytes, why: str) -> None:
    with pytest.raises(PeerProtocolError) as info:
        parse_all(raw)
    assert info.value.code == 1002, why


def test_server_frames_must_not_be_masked_for_a_client() -> None:
    with pytest.raises(PeerProtocolError):
        parse_all(encode_frame(1, b"a", mask=MASK), masked=False)


def test_frame_over_limit_fails_before_payload_arrives() -> None:
    head = encode_frame(2, b"x" * 2000, mask=MASK)[:8]
    with pytest.raises(MessageTooBig) as info:
        parse_all(head, max_size=1000)
    assert info.value.code == 1009


def test_close_codes() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert parse_close_payload(close_payload(1000, "bye")) == (1000, "bye")
    assert parse_close_payload(close_payload(4000, "app")) == (4000, "app")
    for bad in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        assert not close_code_valid_on_wire(bad)
        with pytest.raises(PeerProtocolError) as info:
            parse_close_payload(bad.to_bytes(2, "big"))
        assert info.value.code == 1002
    with pytest.raises(PeerProtocolError) as info2:
        parse_close_payload(b"\x03\xe8\xff\xfe")
    assert info2.value.code == 1007
    with pytest.raises(PeerProtocolError):
        parse_close_payload(b"\x03")
    assert len(close_payload(1000, "é" * 200)) <= 125


@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4))
def test_mask_is_an_involution(data: bytes, mask: bytes) -> None:
    assert apply_mask(apply_mask(data, mask), mask) == data
    assert apply_mask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def naive_mask(data: bytes, mask: bytes) -> bytes:
    """Section 5.3 word for word: octet i XOR octet i MOD 4 of the key."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# 0..200 covers every length mod 4 on the big-integer path; the rest cross into the numpy path
# (64-bit words, from `frames._SMALL` bytes) at every length mod 8 and at a 64 KiB frame.
MASK_LENGTHS = [*range(201), *range(_SMALL - 1, _SMALL + 9), 4099, 65536, 65539, 65543]


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview])
def test_mask_round_trips_every_length_and_offset_against_naive(container: type) -> None:
    rng = random.Random(6455)
    for n in MASK_LENGTHS:
        mask = rng.randbytes(4)
        data = rng.randbytes(n)
        expected = naive_mask(data, mask)
        assert apply_mask(container(data), mask) == expected, n
        assert apply_mask(expected, mask) == data, n
        for offset in (0, 1, 2, 3, 7):
            buf = container(rng.randbytes(offset) + data + rng.randbytes(5))
            assert mask_slice(buf, offset, n, mask) == expected, (n, offset)


@pytest.mark.parametrize("n", [0, 1, 5, 126, 2048, 2051, 65536 + 3])
@pytest.mark.parametrize("chunk", [1, 3, 1000, 1 << 20])
def test_parser_unmasks_in_place_whatever_the_chunking(n: int, chunk: int) -> None:
    data = random.Random(n).randbytes(n)
    mask = b"\x00\xff\x5a\xa5"
    raw = encode_frame(2, data, mask=mask) + encode_frame(1, b"tail", mask=MASK)
    p = FrameParser(expect_masked=True, max_frame_size=1 << 20)
    got = []
    for i in range(0, len(raw), chunk):
        p.feed(raw[i : i + chunk])
        while (f := p.next_frame()) is not None:
            got.append(f.data)
    assert got == [data, b"tail"]
    assert p.buffered == 0


@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 8, 9, 10]), st.binary(max_size=300), st.booleans()),
                max_size=8), st.integers(min_value=1, max_value=50))
def test_round_trip_in_random_chunks(frames: list[tuple[int, bytes, bool]], chunk: int) -> None:
    raw = b""
    expected = []
    for op, data, fin in frames:
        if op >= 8:
            data, fin = data[:125], True
        raw += serialize_frame(Frame(op, data, fin), mask=MASK)
        expected.append((op, data, fin))
    p = FrameParser(expect_masked=True, max_frame_size=1000)
    got = []
    for i in range(0, len(raw), chunk):
        p.feed(raw[i : i + chunk])
        while (f := p.next_frame()) is not None:
            got.append((f.opcode, f.data, f.fin))
    assert got == expected


@settings(max_examples=300)
@given(st.binary(max_size=400), st.booleans(), st.booleans())
def test_fuzzed_bytes_only_raise_protocol_errors(data: bytes, masked: bool, rsv1: bool) -> None:
    p = FrameParser(expect_masked=masked, max_frame_size=200, allowed_rsv1=rsv1)
    p.feed(data)
    try:
        while p.next_frame() is not None:
            pass
    except PeerProtocolError as exc:
        assert exc.code in (1002, 1009)


def read_into(p: FrameParser, data: bytes, chunk: int) -> list[tuple[int, bytes, bool]]:
    """What the loop does with a BufferedProtocol: get_buffer, a read of at most `chunk` bytes, buffer_updated."""
    got = []
    view = memoryview(data)
    while view:
        buf = p.get_buffer(-1)
        assert len(buf) > 0
        n = min(len(buf), len(view), chunk)
        buf[:n] = view[:n]
        del buf
        p.buffer_updated(n)
        while (f := p.next_frame()) is not None:
            got.append((f.opcode, f.data, f.fin))
        p.settle()
        view = view[n:]
    return got


@pytest.mark.parametrize("chunk", [1, 7, 1000, 65550, 1 << 20])
def test_reads_into_the_parser_give_the_same_frames_whatever_the_chunking(chunk: int) -> None:
    rng = random.Random(chunk)
    frames = [(2, rng.randbytes(n), True) for n in (0, 5, 126, 2051, 65536, 70001)] + [(9, b"ping", True)]
    raw = b"".join(encode_frame(op, data, fin=fin, mask=rng.randbytes(4)) for op, data, fin in frames)
    p = FrameParser(expect_masked=True, max_frame_size=1 << 20)
    assert read_into(p, raw, chunk) == frames
    assert p.buffered == 0


def test_parsers_reading_in_turn_do_not_see_each_others_bytes() -> None:
    # Every parser on a thread reads into one shared area; a partial frame must leave it before the
    # next read, whichever parser that read is for.
    rng = random.Random(7)
    parsers = [FrameParser(expect_masked=True, max_frame_size=1 << 20) for _ in range(3)]
    payloads = [[rng.randbytes(rng.choice([3, 300, 5000, 70000])) for _ in range(6)] for _ in parsers]
    streams = [memoryview(b"".join(encode_frame(2, d, mask=rng.randbytes(4)) for d in ps)) for ps in payloads]
    got: list[list[bytes]] = [[] for _ in parsers]
    while any(streams):
        for i, p in enumerate(parsers):
            if not streams[i]:
                continue
            buf = p.get_buffer(-1)
            n = min(len(buf), len(streams[i]), rng.randint(1, 9000))
            buf[:n] = streams[i][:n]
            del buf
            p.buffer_updated(n)
            while (f := p.next_frame()) is not None:
                got[i].append(f.data)
            p.settle()
            streams[i] = streams[i][n:]
    assert got == payloads


def test_a_large_declared_length_does_not_reserve_its_size() -> None:
    p = FrameParser(expect_masked=True, max_frame_size=1 << 30)
    head = bytes([0x82, 0x80 | 127]) + (1 << 29).to_bytes(8, "big") + MASK  # 512 MiB declared, nothing sent
    assert read_into(p, head, 1 << 20) == []
    assert len(p.get_buffer(-1)) <= 4096
    assert p.buffered == len(head)


@settings(max_examples=200)
@given(st.binary(max_size=400), st.booleans(), st.integers(min_value=1, max_value=64))
def test_fuzzed_reads_only_raise_protocol_errors(data: bytes, masked: bool, chunk: int) -> None:
    p = FrameParser(expect_masked=masked, max_frame_size=200)
    try:
        read_into(p, data, chunk)
    except PeerProtocolError as exc:
        assert exc.code in (1002, 1009)


def test_a_frame_trickling_in_is_not_copied_once_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # a peer that sends a large frame a few bytes per segment: the partial frame's buffer grows
    # geometrically, so it is copied a logarithmic number of times rather than once per read
    copies = 0
    own = FrameParser._own

    def counting(self: FrameParser, *args: object) -> None:
        nonlocal copies
        copies += 1
        own(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FrameParser, "_own", counting)
    data = random.Random(3).randbytes(65536)
    p = FrameParser(expect_masked=True, max_frame_size=1 << 20)
    assert read_into(p, encode_frame(2, data, mask=MASK), 3) == [(2, data, True)]
    assert copies <= 20
