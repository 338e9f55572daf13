"""The WebSocket state machine (RFC 6455 sections 5-7, RFC 7692 section 6), sans I/O.

Feed bytes with `receive_data()` / `receive_eof()`, take parsed events with `events_received()` and
the bytes to write with `data_to_send()`. Sending is `send_text()`, `send_binary()`, `send_ping()`,
`send_pong()`, `send_close()`. Every way a peer can break the protocol ends in `_fail()` with the
close code section 7.4.1 prescribes: 1002 for framing errors, 1007 for bad UTF-8, 1009 for size.
"""

from __future__ import annotations

import codecs
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass

from hivecast.ws.deflate import Compressor, Decompressor, DeflateParams
from hivecast.ws.errors import ConnectionClosed, InvalidPayload, MessageTooBig, PeerProtocolError
from hivecast.ws.frames import (
    FrameParser,
    Opcode,
    close_payload,
    encode_frame,
    frame_head,
    parse_close_payload,
)


class Side(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


class State(enum.Enum):
    OPEN = "open"  # the handshake is done before a protocol object exists
    CLOSING = "closing"  # we sent a close frame and wait for the peer's
    CLOSED = "closed"  # closing handshake done, connection failed, or transport gone


# Module constants for the hot paths: on Python 3.11 `State.OPEN` goes through the enum metaclass
# (about 0.15 us a lookup, several per message).
_OPEN, _CLOSING, _CLOSED = State.OPEN, State.CLOSING, State.CLOSED


@dataclass(slots=True)
class Message:
    """A whole data message: `str` for text, `bytes` for binary."""

    data: str | bytes


@dataclass(slots=True)
class Ping:
    data: bytes


@dataclass(slots=True)
class Pong:
    data: bytes


@dataclass(slots=True)
class Closed:
    """The terminal event: the code and reason the connection ended with (1006 if the transport just went)."""

    code: int
    reason: str
    by_peer: bool


Event = Message | Ping | Pong | Closed

_new_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_JOIN_MAX = 4096  # bigger unmasked payloads are queued apart from their frame head rather than copied after it


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_size: int = 16 * 1024 * 1024
    max_frame_size: int | None = None  # defaults to max_message_size
    compress_min_size: int = 64  # smaller messages are sent uncompressed (RSV1 is per message)
    # zlib level: 1 is several times faster than 6 for ~10-15% bigger output; CPU is what we lack
    compress_level: int = 1


class WebSocketProtocol:
    __slots__ = (
        "_close_received", "_close_sent", "_compressor", "_decoder", "_events", "_frag_compressed", "_frag_op",
        "_frag_parts", "_frag_size", "_held_failure", "_inflater", "_mask", "_out", "_parser", "close_code",
        "close_reason", "deflate", "deliver_before_failing", "limits", "side", "state",
    )

    def __init__(self, side: Side, *, deflate: DeflateParams | None = None, limits: Limits | None = None,
                 mask_source: Callable[[int], bytes] = os.urandom, deliver_before_failing: bool = False) -> None:
        self.side = side
        # When bad input follows whole messages in the same bytes, hold the failure until the caller has
        # handled those messages (and maybe answered them) and calls `fail_held()`; see there.
        self.deliver_before_failing = deliver_before_failing
        self._held_failure: tuple[int, str] | None = None
        self.limits = limits or Limits()
        self.deflate = deflate
        self.state = _OPEN
        server = side is Side.SERVER
        self._parser = FrameParser(expect_masked=server,
                                   max_frame_size=self.limits.max_frame_size or self.limits.max_message_size,
                                   allowed_rsv1=deflate is not None)
        self._mask: Callable[[int], bytes] | None = None if server else mask_source
        self._compressor: Compressor | None = None
        self._inflater: Decompressor | None = None
        if deflate is not None:
            # our sending direction is the server's when we are the server, and the reverse for receiving
            if server:
                self._compressor = Compressor(deflate.server_max_window_bits, deflate.server_no_context_takeover,
                                              self.limits.compress_level)
                self._inflater = Decompressor(deflate.client_max_window_bits, deflate.client_no_context_takeover,
                                              self.limits.max_message_size)
            else:
                self._compressor = Compressor(deflate.client_max_window_bits, deflate.client_no_context_takeover,
                                              self.limits.compress_level)
                self._inflater = Decompressor(deflate.server_max_window_bits, deflate.server_no_context_takeover,
                                              self.limits.max_message_size)
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._frag_op: int | None = None
        self._frag_parts: list[bytes] | list[str] = []
        self._frag_size = 0
        self._frag_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._close_sent = False
        self._close_received = False
        self.close_code: int | None = None
        self.close_reason = ""

    # ---- input ----
    def receive_data(self, data: bytes) -> None:
        if self._reading_over():
            return
        self._parser.feed(data)
        self._parse()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the transport should read to (the `asyncio.BufferedProtocol` way in; see FrameParser)."""
        return self._parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were read into the buffer `get_buffer()` gave: the same as `receive_data()` of them."""
        parser = self._parser
        if self._reading_over():
            parser.discard()
            return
        parser.buffer_updated(nbytes)
        try:
            self._parse()
        finally:
            if self._reading_over():
                parser.discard()
            else:
                parser.settle()

    def _reading_over(self) -> bool:
        # section 5.5.1: nothing after the close frame counts (nor after broken framing)
        return self.state is _CLOSED or self._close_received or self._held_failure is not None

    def _parse(self) -> None:
        parser = self._parser
        try:
            while (frame := parser.next_frame()) is not None:
                op = frame.opcode
                if op >= 0x8:
                    self._control(op, frame.data)
                    if self._done():
                        return
                elif op == 0x0:
                    if self._frag_op is None:
                        raise PeerProtocolError("continuation frame without a message to continue")
                    if frame.rsv1:
                        raise PeerProtocolError("RSV1 set on a continuation frame")
                    self._append(frame.data, frame.fin)
                else:
                    if self._frag_op is not None:
                        raise PeerProtocolError("new data frame inside a fragmented message")
                    if frame.fin and not frame.rsv1:
                        # the common case: one unfragmented, uncompressed frame
                        payload = frame.data
                        if len(payload) > self.limits.max_message_size:
                            raise MessageTooBig("message over the size limit")
                        if op == 0x1:
                            try:
                                self._events.append(Message(payload.decode("utf-8")))
                            except UnicodeDecodeError:
                                raise InvalidPayload("text message is not valid UTF-8") from None
                        else:
                            self._events.append(Message(payload))
                        continue
                    self._frag_op = op
                    self._frag_compressed = frame.rsv1
                    self._frag_size = 0
                    self._frag_parts = []
                    self._decoder = _new_utf8_decoder() if op == 0x1 else None
                    self._append(frame.data, frame.fin)
        except PeerProtocolError as exc:
            if self.deliver_before_failing and any(type(e) is Message for e in self._events):
                self._held_failure = (exc.code, str(exc))
            else:
                self._fail(exc.code, str(exc))

    @property
    def failure_held(self) -> bool:
        return self._held_failure is not None

    def fail_held(self) -> None:
        """Fail the connection for the bad input held back by `deliver_before_failing`.

        Section 7.1.7 says to fail on bad input; it does not make the valid messages before it void.
        Holding the failure lets their answers go out before the close frame (Autobahn 3.2, 4.1.3,
        5.15, ...: echo the good message, then close 1002). Nothing more is read meanwhile.
        """
        held, self._held_failure = self._held_failure, None
        if held is not None and self.state is not _CLOSED:
            self._fail(*held)

    def _done(self) -> bool:
        return self._close_received or self.state is _CLOSED

    def _append(self, data: bytes, fin: bool) -> None:
        if self._frag_compressed:
            assert self._inflater is not None
            data = self._inflater.feed(data, fin)
        self._frag_size += len(data)
        if self._frag_size > self.limits.max_message_size:
            raise MessageTooBig("message over the size limit")
        decoder = self._decoder
        if decoder is not None:
            try:
                # incremental: invalid sequences fail on the fragment that holds them (fail fast)
                text = decoder.decode(data, fin)
            except UnicodeDecodeError:
                raise InvalidPayload("text message is not valid UTF-8") from None
            self._frag_parts.append(text)  # type: ignore[arg-type]
            if fin:
                self._events.append(Message("".join(self._frag_parts)))  # type: ignore[arg-type]
        else:
            self._frag_parts.append(data)  # type: ignore[arg-type]
            if fin:
                self._events.append(Message(b"".join(self._frag_parts)))  # type: ignore[arg-type]
        if fin:
            self._frag_op = None
            self._frag_parts = []
            self._decoder = None

    def _control(self, op: int, data: bytes) -> None:
        if op == 0x9:
            self._events.append(Ping(data))
            if not self._close_sent:
                self._out.append(self._frame(0xA, data))
        elif op == 0xA:
            self._events.append(Pong(data))
        else:
            code, reason = parse_close_payload(data)
            self._close_received = True
            if not self._close_sent:
                # section 5.5.1: answer with a close frame, echoing the status code
                self._out.append(self._frame(0x8, close_payload(code)))
                self._close_sent = True
            self._finish(code, reason, by_peer=True)

    def receive_eof(self) -> None:
        self.fail_held()
        if self.state is not _CLOSED:
            self._finish(1006, "connection lost", by_peer=True)

    def _fail(self, code: int, reason: str) -> None:
        """Section 7.1.7: send a close frame (if we still may), then the connection is over."""
        if not self._close_sent:
            self._out.append(self._frame(0x8, close_payload(code, reason)))
            self._close_sent = True
        self._finish(code, reason, by_peer=False)

    def _finish(self, code: int, reason: str, by_peer: bool) -> None:
        self.state = _CLOSED
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._events.append(Closed(code, reason, by_peer))

    # ---- output ----
    def _frame(self, opcode: int, data: bytes, rsv1: bool = False) -> bytes:
        mask = self._mask(4) if self._mask is not None else None
        return encode_frame(opcode, data, rsv1=rsv1, mask=mask)

    def _payload(self, data: str | bytes) -> tuple[int, bytes, bool]:
        """(opcode, payload, rsv1) of one whole message, compressed when negotiated and worth it."""
        if isinstance(data, str):
            payload, opcode = data.encode("utf-8"), 0x1
        else:
            payload, opcode = bytes(data), 0x2
        comp = self._compressor
        if comp is not None and len(payload) >= self.limits.compress_min_size:
            return opcode, comp.compress(payload), True
        return opcode, payload, False

    def encode_message(self, data: str | bytes) -> bytes:
        """The bytes of one whole message as a single frame (compressed when negotiated and worth it)."""
        opcode, payload, rsv1 = self._payload(data)
        return self._frame(opcode, payload, rsv1)

    def _check_open(self) -> None:
        if self._close_sent or self.state is not _OPEN:
            raise ConnectionClosed(self.close_code or 1006, self.close_reason)

    def send_message(self, data: str | bytes) -> None:
        self._check_open()
        opcode, payload, rsv1 = self._payload(data)
        if self._mask is None and len(payload) > _JOIN_MAX:
            # server frames are not masked: the payload goes out as it is, after its head (no join copy)
            self._out.append(frame_head(opcode, len(payload), rsv1=rsv1))
            self._out.append(payload)
        else:
            self._out.append(self._frame(opcode, payload, rsv1))

    def send_text(self, text: str) -> None:
        self.send_message(text)

    def send_binary(self, data: bytes) -> None:
        self.send_message(bytes(data))

    def send_frame_bytes(self, raw: bytes) -> None:
        """Queue bytes framed elsewhere (the broadcast path frames once for many connections)."""
        self._check_open()
        self._out.append(raw)

    def send_ping(self, data: bytes = b"") -> None:
        self._check_open()
        if len(data) > 125:
            raise ValueError("ping payload over 125 bytes")
        self._out.append(self._frame(0x9, data))

    def send_pong(self, data: bytes = b"") -> None:
        self._check_open()
        self._out.append(self._frame(0xA, data))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the `Closed` event comes when the peer answers (or the transport goes)."""
        if self._close_sent or self.state is _CLOSED:
            return
        self._out.append(self._frame(0x8, close_payload(code, reason)))
        self._close_sent = True
        self.state = _CLOSING
        self.close_code, self.close_reason = None, ""

    # ---- draining ----
    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    @property
    def close_sent(self) -> bool:
        return self._close_sent

    @property
    def close_expected_from_peer(self) -> bool:
        return self._close_sent and not self._close_received and self.state is not _CLOSED

    @property
    def buffered_input(self) -> int:
        return self._parser.buffered


def encode_broadcast(data: str | bytes, deflate: DeflateParams | None, *, compress_min_size: int = 64,
                     compress_level: int = 1) -> bytes:
    """One server-to-client frame for many receivers: valid for every connection whose deflate
    parameters equal `deflate` with server_no_context_takeover (or without deflate, when None)."""
    if isinstance(data, str):
        payload, opcode = data.encode("utf-8"), Opcode.TEXT
    else:
        payload, opcode = bytes(data), Opcode.BINARY
    if deflate is not None and len(payload) >= compress_min_size:
        if not deflate.server_no_context_takeover:
            raise ValueError("a shared frame needs server_no_context_takeover")
        comp = Compressor(deflate.server_max_window_bits, True, compress_level)
        return encode_frame(opcode, comp.compress(payload), rsv1=True)
    return encode_frame(opcode, payload)
