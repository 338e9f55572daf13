"""RFC 6455 section 5: the frame on the wire, its parser and its serializer. No state beyond bytes.

The parser works on a growing buffer rather than a generator: it is handed whatever the socket
delivered, returns every complete frame in it, and keeps the rest. Bounds are constructor
arguments; a frame whose declared length is over `max_frame_size` fails before its payload arrives.
"""

from __future__ import annotations

import enum
import struct
import threading
from dataclasses import dataclass

import numpy as np

from hivecast.ws.errors import InvalidPayload, MessageTooBig, PeerProtocolError


class Opcode(enum.IntEnum):
    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
_KNOWN = frozenset(int(op) for op in Opcode)


class CloseCode(enum.IntEnum):
    """RFC 6455 section 7.4.1, plus the IANA registrations 1012-1014."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never on the wire
    ABNORMAL = 1006  # never on the wire
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


_WIRE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def close_code_valid_on_wire(code: int) -> bool:
    """Codes a peer may send in a close frame: the registered ones, and 3000-4999 for applications."""
    return code in _WIRE_CODES or 3000 <= code <= 4999


@dataclass(slots=True)
class Frame:
    opcode: int
    data: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False


_SMALL = 1024  # below this one big-integer XOR wins; above it numpy's per-call cost is paid back


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR with the 4-byte key (section 5.3), in C loops rather than a Python byte loop."""
    return mask_slice(data, 0, len(data), mask)


def mask_slice(buf: bytes | bytearray | memoryview, start: int, n: int, mask: bytes) -> bytes:
    """`apply_mask(buf[start:start + n], mask)` without first copying the slice out of `buf`.

    Small payloads: one big-integer XOR. Large ones: numpy XORs eight bytes at a time with the key
    repeated twice, read straight from the receive buffer as 64-bit words; this is the hot path of
    every large client message the server receives, so it makes as few numpy calls as it can (their
    fixed cost, about 0.3 us each, is most of the time below 16 KiB).
    """
    if n == 0:
        return b""
    if n < _SMALL:
        key = (mask * ((n >> 2) + 1))[:n]
        return (int.from_bytes(buf[start:start + n], "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
    whole = n >> 3
    rest = n & 7
    words = whole + (rest > 0)
    if words <= _SCRATCH_WORDS:
        scratch = getattr(_scratch, "words", None)
        if scratch is None:
            scratch = _scratch.words = np.empty(_SCRATCH_WORDS, dtype=np.uint64)
        out = scratch[:words]
    else:
        out = np.empty(words, dtype=np.uint64)
    np.bitwise_xor(np.frombuffer(buf, dtype=np.uint64, count=whole, offset=start),
                   np.frombuffer(mask * 2, dtype=np.uint64), out=out[:whole] if rest else out)
    if not rest:
        return out.tobytes()
    # the last 1-7 bytes: `whole * 8` is a multiple of 4, so the key starts over there too
    end = start + n
    out[whole] = int.from_bytes(buf[end - rest:end], "little") ^ int.from_bytes(mask * 2, "little")
    return out.view(np.uint8)[:n].tobytes()


# The XOR lands in a scratch array that lives as long as the thread (one per thread: numpy lets go of
# the GIL in long loops), and only the result is a new object. A fresh 64 KiB array per message cost
# more than the XOR: freeing it with the receive buffer made glibc trim and regrow the heap (a brk()
# and page faults every few messages).
_SCRATCH_WORDS = 1 << 17  # 1 MiB; bigger payloads get an array of their own
_scratch = threading.local()


_PACK_H = struct.Struct("!BBH").pack
_PACK_Q = struct.Struct("!BBQ").pack


def serialize_frame(frame: Frame, mask: bytes | None = None) -> bytes:
    """The frame's bytes; `mask` is the 4-byte key (clients must mask, servers must not)."""
    return encode_frame(frame.opcode, frame.data, fin=frame.fin, rsv1=frame.rsv1,
                        rsv2=frame.rsv2, rsv3=frame.rsv3, mask=mask)


def encode_frame(opcode: int, data: bytes, *, fin: bool = True, rsv1: bool = False, rsv2: bool = False,
                 rsv3: bool = False, mask: bytes | None = None) -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0) | opcode
    head = _head(b0, len(data), 0x80 if mask is not None else 0)
    if mask is None:
        return head + data
    return head + mask + apply_mask(data, mask)


def frame_head(opcode: int, length: int, *, rsv1: bool = False) -> bytes:
    """The head of an unmasked final frame, for writing it and its payload as two buffers (no join)."""
    return _head((0xC0 if rsv1 else 0x80) | opcode, length, 0)


def _head(b0: int, n: int, mbit: int) -> bytes:
    if n < 126:
        return bytes((b0, mbit | n))
    if n < 65536:
        return _PACK_H(b0, mbit | 126, n)
    return _PACK_Q(b0, mbit | 127, n)


class FrameParser:
    """Turns bytes into frames, validating everything that can be checked on one frame alone.

    `expect_masked` is True on the server (client frames must be masked, section 5.1) and False on
    the client. `allowed_rsv1` is set when permessage-deflate was negotiated.

    Bytes come in one of two ways. `feed(data)` takes what a `data_received` got. Or the loop reads
    straight into the parser (an `asyncio.BufferedProtocol`): `get_buffer()`, the read, then
    `buffer_updated(n)`, the frames, and `settle()`. Reads then land in a receive area shared by every
    parser on the thread (frames are taken out of it before the next read anywhere), and only a
    partial frame is moved to a buffer of the connection's own, sized for the rest of that frame: no
    bytes object per read, no join of the pieces of a large frame.
    """

    __slots__ = ("_buf", "_end", "_pos", "_shared", "allowed_rsv1", "expect_masked", "max_frame_size")

    def __init__(self, *, expect_masked: bool, max_frame_size: int, allowed_rsv1: bool = False) -> None:
        # The bytes object the loop handed us while nothing else is buffered (parsed in place, never
        # copied), the shared receive area during buffer_updated(), or a bytearray of our own while a
        # partial frame waits for the rest; the unparsed bytes are _buf[_pos:_end].
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._end = 0
        self._shared = False
        self.expect_masked = expect_masked
        self.max_frame_size = max_frame_size
        self.allowed_rsv1 = allowed_rsv1

    def feed(self, data: bytes) -> None:
        pos, end = self._pos, self._end
        if pos >= end:
            whole = self._buf = data if type(data) is bytes else bytes(data)
            self._pos, self._end = 0, len(whole)
            return
        buf: bytes | bytearray = self._buf
        if type(buf) is bytearray and end == len(buf):
            del buf[:pos]  # cheap: bytearray drops a prefix by moving its start
        else:
            buf = bytearray(memoryview(buf)[pos:end])
        buf += data
        self._buf = buf
        self._pos, self._end = 0, len(buf)

    # ---- the loop reads into us ----
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read goes (`asyncio.BufferedProtocol.get_buffer`)."""
        pos, end = self._pos, self._end
        if pos >= end:
            area = _recv_area()
            self._buf, self._pos, self._end, self._shared = area[0], 0, 0, True
            return area[1]
        buf = self._buf
        rest = _missing(buf, pos, end)
        if len(buf) - end < min(rest, 1024):
            # grown by at least the bytes already held (or 4 KiB): a frame that trickles in a byte
            # a read is copied O(log n) times, not once a read
            self._own(buf, pos, end, min(rest, max(end - pos, 4096)))
            buf, end = self._buf, self._end
        return memoryview(buf)[end:]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes

    def settle(self) -> None:
        """After the frames of a read were taken: a partial frame leaves the shared area."""
        if self._pos >= self._end:
            self._buf, self._pos, self._end, self._shared = b"", 0, 0, False
        elif self._shared:
            buf, pos, end = self._buf, self._pos, self._end
            self._own(buf, pos, end, min(_missing(buf, pos, end), max(end - pos, 4096)))

    def discard(self) -> None:
        self._buf, self._pos, self._end, self._shared = b"", 0, 0, False

    def _own(self, buf: bytes | bytearray, pos: int, end: int, room: int) -> None:
        pending = end - pos
        own = bytearray(pending + room)
        own[:pending] = memoryview(buf)[pos:end]
        self._buf, self._pos, self._end, self._shared = own, 0, pending, False

    @property
    def buffered(self) -> int:
        return self._end - self._pos

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive. Raises `PeerProtocolError`."""
        buf = self._buf
        pos = self._pos
        avail = self._end - pos
        if avail < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        rsv1 = bool(b0 & 0x40)
        if b0 & 0x30 or (rsv1 and not self.allowed_rsv1):
            raise PeerProtocolError("reserved bits set without a negotiated extension")
        if opcode not in _KNOWN:
            raise PeerProtocolError(f"unknown opcode {opcode:#x}")
        masked = bool(b1 & 0x80)
        if masked != self.expect_masked:
            raise PeerProtocolError("client frames must be masked" if self.expect_masked
                                    else "server frames must not be masked")
        length = b1 & 0x7F
        head = 2
        if opcode >= 0x8:
            # section 5.5: control frames are short and never fragmented
            if not fin:
                raise PeerProtocolError("fragmented control frame")
            if length > 125:
                raise PeerProtocolError("control frame payload over 125 bytes")
            if rsv1:
                raise PeerProtocolError("RSV1 on a control frame")
        if length == 126:
            if avail < 4:
                return None
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        elif length == 127:
            if avail < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if length >> 63:
                raise PeerProtocolError("64-bit length with the top bit set")
            head = 10
        if length > self.max_frame_size:
            raise MessageTooBig(f"frame of {length} bytes over the {self.max_frame_size} limit")
        if masked:
            head += 4
        if avail < head + length:
            return None
        start = pos + head
        end = start + length
        if masked:
            data = mask_slice(buf, start, length, bytes(buf[start - 4 : start]))
        elif type(buf) is bytes:
            data = buf[start:end]
        else:
            data = bytes(memoryview(buf)[start:end])
        if end == self._end:
            self._pos = self._end = 0
            if not self._shared:
                self._buf = b""
        else:
            self._pos = end
        return Frame(opcode, data, fin, rsv1)


def _missing(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Bytes the frame at `pos` still lacks (256 while its head is incomplete). Room is offered for
    them, but never more than the bytes already received (or 4 KiB): a header that declares a large
    frame reserves nothing by itself."""
    pending = end - pos
    total = _frame_total(buf, pos, pending)
    return total - pending if total is not None and total > pending else 256


def _frame_total(buf: bytes | bytearray, pos: int, avail: int) -> int | None:
    """Head plus payload length of the frame at `pos`, once its head has arrived (not validated)."""
    if avail < 2:
        return None
    b1 = buf[pos + 1]
    length = b1 & 0x7F
    head = 6 if b1 & 0x80 else 2
    if length == 126:
        if avail < 4:
            return None
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        head += 2
    elif length == 127:
        if avail < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        head += 8
    return head + length


_RECV_AREA = 256 * 1024  # as much as one read may bring (uvloop reads at most 256 KB at a time too)
_areas = threading.local()


def _recv_area() -> tuple[bytearray, memoryview]:
    area: tuple[bytearray, memoryview] | None = getattr(_areas, "area", None)
    if area is None:
        buf = bytearray(_RECV_AREA)
        area = _areas.area = (buf, memoryview(buf))
    return area


def parse_close_payload(data: bytes) -> tuple[int, str]:
    """Section 5.5.1 and 7.1.5: (code, reason) of a close frame; (1005, "") when it carries none."""
    if not data:
        return 1005, ""
    if len(data) == 1:
        raise PeerProtocolError("close frame with a one-byte payload")
    code = int.from_bytes(data[:2], "big")
    if not close_code_valid_on_wire(code):
        raise PeerProtocolError(f"invalid close code {code}")
    try:
        reason = data[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("close reason is not UTF-8") from None
    return code, reason


def close_payload(code: int, reason: str = "") -> bytes:
    if code == 1005:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw
