"""The state machine fed with bytes: messages, fragmentation, control frames, closing, and the close
code every kind of bad input ends with (RFC 6455 section 7.4.1)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.ws.deflate import Compressor, DeflateParams
from hivecast.ws.errors import ConnectionClosed
from hivecast.ws.frames import FrameParser, encode_frame, parse_close_payload
from hivecast.ws.protocol import Closed, Limits, Message, Ping, Pong, Side, State, WebSocketProtocol

MASK = b"\x01\x02\x03\x04"


def cframe(op: int, data: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    return encode_frame(op, data, fin=fin, rsv1=rsv1, mask=MASK)


def server(**kw: object) -> WebSocketProtocol:
    return WebSocketProtocol(Side.SERVER, **kw)  # type: ignore[arg-type]


def sent_frames(p: WebSocketProtocol) -> list[tuple[int, bytes]]:
    parser = FrameParser(expect_masked=p.side is Side.CLIENT, max_frame_size=1 << 30, allowed_rsv1=True)
    for chunk in p.data_to_send():
        parser.feed(chunk)
    out = []
    while (f := parser.next_frame()) is not None:
        out.append((f.opcode, f.data))
    return out


def closed_with(p: WebSocketProtocol) -> int:
    evs = [e for e in p.events_received() if isinstance(e, Closed)]
    assert evs, "expected the connection to close"
    frames = sent_frames(p)
    assert frames and frames[-1][0] == 8
    code, _ = parse_close_payload(frames[-1][1])
    assert code == evs[0].code
    assert p.state is State.CLOSED
    return code


def test_text_and_binary_messages() -> None:
    p = server()
    p.receive_data(cframe(1, "héllo".encode()) + cframe(2, b"\x00\xff"))
    assert p.events_received() == [Message("héllo"), Message(b"\x00\xff")]


def test_fragmented_message_with_control_frames_between() -> None:
    p = server()
    p.receive_data(cframe(1, b"fra", fin=False) + cframe(9, b"ping") + cframe(0, b"gm", fin=False)
                   + cframe(10, b"pong") + cframe(0, b"ent"))
    assert p.events_received() == [Ping(b"ping"), Pong(b"pong"), Message("fragment")]
    assert sent_frames(p) == [(10, b"ping")]


def test_utf8_split_across_fragments_is_fine() -> None:
    raw = "κόσμε".encode()
    p = server()
    p.receive_data(cframe(1, raw[:3], fin=False) + cframe(0, raw[3:7], fin=False) + cframe(0, raw[7:]))
    assert p.events_received() == [Message("κόσμε")]


def test_invalid_utf8_fails_fast_with_1007() -> None:
    p = server()
    p.receive_data(cframe(1, b"ok \xed\xa0\x80", fin=False))  # a surrogate: invalid on the first fragment
    assert closed_with(p) == 1007


@pytest.mark.parametrize("payload", [b"\xff", b"\xc0\xaf", b"\xe0\x80\x80", b"abc\xf4\x90\x80\x80"])
def test_invalid_utf8_single_frame_is_1007(payload: bytes) -> None:
    p = server()
    p.receive_data(cframe(1, payload))
    assert closed_with(p) == 1007


def test_truncated_utf8_at_end_of_message_is_1007() -> None:
    p = server()
    p.receive_data(cframe(1, b"ab\xce", fin=False) + cframe(0, b""))
    assert closed_with(p) == 1007


@pytest.mark.parametrize(
    "raw",
    [
        cframe(0, b"x"),  # continuation without a message
        cframe(1, b"a", fin=False) + cframe(1, b"b"),  # new message inside a fragmented one
        cframe(1, b"a", rsv1=True),  # RSV1 without deflate
        cframe(8, b"\x03\xe8"[:1]),  # one-byte close payload
        cframe(8, (999).to_bytes(2, "big")),
        bytes([0x81, 0x01, 0x41]),  # unmasked
    ],
)
def test_protocol_errors_close_with_1002(raw: bytes) -> None:
    p = server()
    p.receive_data(raw)
    assert closed_with(p) == 1002


def test_failure_after_good_messages_waits_for_their_answers() -> None:
    """Autobahn 3.2: a message, then a frame with RSV2 set, then a ping, all in one read."""
    raw = cframe(1, b"first") + encode_frame(1, b"bad", rsv2=True, mask=MASK) + cframe(9, b"p")
    strict = server()
    strict.receive_data(raw)
    assert closed_with(strict) == 1002  # by default: fail at once

    p = server(deliver_before_failing=True)
    p.receive_data(raw)
    assert p.events_received() == [Message("first")]
    assert p.failure_held and p.state is State.OPEN and p.data_to_send() == []
    p.receive_data(cframe(1, b"ignored"))  # nothing more is read once the framing broke
    assert p.events_received() == []
    p.send_text("first")  # the answer still goes out ...
    p.fail_held()  # ... before the close frame
    assert sent_frames(p) == [(1, b"first"), (8, (1002).to_bytes(2, "big") + b"reserved bits set without a "
                                                b"negotiated extension")]
    assert [e.code for e in p.events_received() if isinstance(e, Closed)] == [1002]
    assert p.state is State.CLOSED and not p.failure_held


def test_held_failure_without_messages_or_at_eof_is_immediate() -> None:
    p = server(deliver_before_failing=True)
    p.receive_data(encode_frame(3, b"", mask=MASK))  # a reserved opcode alone: nothing to deliver first
    assert closed_with(p) == 1002
    q = server(deliver_before_failing=True)
    q.receive_data(cframe(2, b"ok") + encode_frame(3, b"", mask=MASK))
    q.receive_eof()  # the peer went away before we answered: still the close code of the error
    assert [e.code for e in q.events_received() if isinstance(e, Closed)] == [1002]


def test_oversized_message_1009_single_and_fragmented() -> None:
    p = server(limits=Limits(max_message_size=100))
    p.receive_data(cframe(2, b"x" * 101))
    assert closed_with(p) == 1009
    p = server(limits=Limits(max_message_size=100))
    p.receive_data(cframe(2, b"x" * 60, fin=False) + cframe(0, b"x" * 60))
    assert closed_with(p) == 1009


def test_zip_bomb_closes_with_1009() -> None:
    params = DeflateParams()
    p = server(deflate=params, limits=Limits(max_message_size=1 << 20))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"A" * (64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200_000  # small on the wire
    p.receive_data(cframe(2, bomb[:-4], rsv1=True))
    assert closed_with(p) == 1009


def test_compressed_fragmented_message() -> None:
    params = DeflateParams()
    p = server(deflate=params)
    comp = Compressor(15, False)
    data = comp.compress("déjà vu " .encode() * 50)
    p.receive_data(cframe(1, data[:5], fin=False, rsv1=True) + cframe(0, data[5:]))
    assert p.events_received() == [Message("déjà vu " * 50)]
    # RSV1 on a continuation is an error
    p.receive_data(cframe(1, data[:5], fin=False, rsv1=True) + cframe(0, data[5:], rsv1=True))
    assert closed_with(p) == 1002


def test_closing_handshake_peer_initiated() -> None:
    p = server()
    p.receive_data(cframe(8, (1000).to_bytes(2, "big") + b"bye") + cframe(1, b"ignored"))
    assert p.events_received() == [Closed(1000, "bye", True)]
    assert sent_frames(p) == [(8, (1000).to_bytes(2, "big"))]
    with pytest.raises(ConnectionClosed):
        p.send_text("late")


def test_closing_handshake_we_initiate_and_empty_close() -> None:
    s = server()
    c = WebSocketProtocol(Side.CLIENT)
    s.send_close(4001, "custom")
    assert s.state is State.CLOSING
    for chunk in s.data_to_send():
        c.receive_data(chunk)
    assert c.events_received() == [Closed(4001, "custom", True)]
    for chunk in c.data_to_send():
        s.receive_data(chunk)
    assert s.events_received() == [Closed(4001, "", True)]
    assert s.state is State.CLOSED and s.close_code == 4001
    p = server()
    p.receive_data(cframe(8, b""))
    assert p.events_received() == [Closed(1005, "", True)]
    assert sent_frames(p) == [(8, b"")]


def test_eof_without_close_is_1006() -> None:
    p = server()
    p.receive_eof()
    assert p.events_received() == [Closed(1006, "connection lost", True)]


def test_client_masks_and_server_does_not() -> None:
    c = WebSocketProtocol(Side.CLIENT, mask_source=lambda n: MASK)
    c.send_text("Hello")
    assert c.data_to_send() == [bytes.fromhex("818401020304") [:2].replace(b"\x84", b"\x85") + MASK
                                + bytes(b ^ MASK[i % 4] for i, b in enumerate(b"Hello"))]
    s = server()
    s.send_binary(b"ab")
    assert s.data_to_send() == [b"\x82\x02ab"]


def test_deflate_both_ways_between_our_client_and_server() -> None:
    for params in (DeflateParams(), DeflateParams(True, True, 9, 8)):
        s = server(deflate=params)
        c = WebSocketProtocol(Side.CLIENT, deflate=params)
        for i in range(3):
            msg = f"message {i} " * 40
            c.send_text(msg)
            for chunk in c.data_to_send():
                s.receive_data(chunk)
            assert s.events_received() == [Message(msg)]
            s.send_binary(msg.encode())
            for chunk in s.data_to_send():
                c.receive_data(chunk)
            assert c.events_received() == [Message(msg.encode())]


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 15), st.binary(max_size=140), st.booleans(), st.booleans()), max_size=6),
       st.booleans())
def test_fuzzed_frame_sequences_never_crash(frames: list[tuple[int, bytes, bool, bool]], deflate: bool) -> None:
    p = server(deflate=DeflateParams() if deflate else None, limits=Limits(max_message_size=300))
    raw = b""
    for op, data, fin, rsv1 in frames:
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
        raw += bytes([b0]) + encode_frame(0, data, mask=MASK)[1:]
    p.receive_data(raw)
    for ev in p.events_received():
        if isinstance(ev, Closed):
            assert ev.code in (1002, 1007, 1009, 1000, 1001, 1003, 1008, 1010, 1011, 1005) or 3000 <= ev.code < 5000


def read_into(p: WebSocketProtocol, raw: bytes, chunk: int) -> None:
    view = memoryview(raw)
    while view:
        buf = p.get_buffer(-1)
        n = min(len(buf), len(view), chunk)
        buf[:n] = view[:n]
        del buf
        p.buffer_updated(n)
        view = view[n:]


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 15), st.binary(max_size=140), st.booleans(), st.booleans()), max_size=6),
       st.booleans(), st.integers(min_value=1, max_value=40))
def test_reads_into_the_core_act_like_received_bytes(frames: list[tuple[int, bytes, bool, bool]], deflate: bool,
                                                       chunk: int) -> None:
    # The BufferedProtocol way in (get_buffer / buffer_updated) gives the same events, the same bytes
    # to send and the same end as receive_data() of the same bytes, whatever the read sizes.
    raw = b""
    for op, data, fin, rsv1 in frames:
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
        raw += bytes([b0]) + encode_frame(0, data, mask=MASK)[1:]
    raw += cframe(1, b"after") + cframe(8, b"\x03\xe8") + cframe(1, b"ignored")
    outcome = []
    for buffered in (False, True):
        p = server(deflate=DeflateParams() if deflate else None, limits=Limits(max_message_size=300))
        if buffered:
            read_into(p, raw, chunk)
        else:
            for i in range(0, len(raw), chunk):
                p.receive_data(raw[i : i + chunk])
        outcome.append((p.events_received(), b"".join(p.data_to_send()), p.state, p.failure_held))
    assert outcome[0] == outcome[1]
