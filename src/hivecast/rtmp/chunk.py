"""The RTMP chunk stream (RTMP specification 5.3), sans I/O.

`ChunkReader.feed(bytes) -> [Message]` reassembles messages from chunks of any chunk stream id
(2..65599), message header types 0..3, extended timestamps and interleaved chunk streams, and
applies Set Chunk Size and Abort itself (they change how the very next chunk is read).
`ChunkWriter` serializes messages, compressing headers (types 1..3) per chunk stream;
`encode_message` writes a self-contained message (type 0 then type 3 chunks) whose bytes do not
depend on what was sent before: that is what lets one serialization go to every reader.

Limits: the peer's chunk size, message length, live chunk streams and the bytes held in partly
received messages are bounded; going over raises ChunkError and the adapter drops the peer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hivecast.rtmp.errors import ChunkError

# Message type ids (RTMP specification 5.4, 7.1).
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO = 8, 9
DATA_AMF3, SHARED_OBJECT_AMF3, COMMAND_AMF3 = 15, 16, 17
DATA_AMF0, SHARED_OBJECT_AMF0, COMMAND_AMF0 = 18, 19, 20
AGGREGATE = 22

# User Control event types (7.1.7).
STREAM_BEGIN, STREAM_EOF, STREAM_DRY, SET_BUFFER_LENGTH, STREAM_IS_RECORDED = 0, 1, 2, 3, 4
PING_REQUEST, PING_RESPONSE = 6, 7

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF
EXTENDED = 0xFFFFFF
_HEADER_SIZES = (11, 7, 3, 0)


@dataclass(slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    csid: int = 3


@dataclass(slots=True)
class _InState:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    ext: int | None = None  # the raw extended timestamp field of the last header, if it had one
    parts: list[bytes] = field(default_factory=list)
    received: int = 0
    started: bool = False  # a header of type 0 has been seen (types 1..3 need one first)
    in_message: bool = False


class ChunkReader:
    def __init__(
        self,
        *,
        max_chunk_size: int = 1 << 20,
        max_message_size: int = 8 << 20,
        max_chunk_streams: int = 64,
        max_pending_bytes: int = 16 << 20,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_chunk_size = max_chunk_size
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.max_pending_bytes = max_pending_bytes
        self.bytes_received = 0
        self._pending = 0
        self._buf = bytearray()
        self._streams: dict[int, _InState] = {}

    def feed(self, data: bytes) -> list[Message]:
        self.bytes_received += len(data)
        self._buf += data
        out: list[Message] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while True:
            start = pos
            if n - pos < 1:
                break
            b0 = buf[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            pos += 1
            if csid == 0:
                if n - pos < 1:
                    pos = start
                    break
                csid = 64 + buf[pos]
                pos += 1
            elif csid == 1:
                if n - pos < 2:
                    pos = start
                    break
                csid = 64 + buf[pos] + (buf[pos + 1] << 8)
                pos += 2
            hsize = _HEADER_SIZES[fmt]
            if n - pos < hsize:
                pos = start
                break
            st = self._streams.get(csid)
            if st is None:
                if fmt != 0:
                    raise ChunkError(f"chunk stream {csid} starts with a type {fmt} header")
                if len(self._streams) >= self.max_chunk_streams:
                    raise ChunkError(f"more than {self.max_chunk_streams} chunk streams")
                st = _InState()
            if fmt != 0 and not st.started:
                raise ChunkError(f"chunk stream {csid} starts with a type {fmt} header")
            ts_field = 0
            length = st.length
            type_id = st.type_id
            stream_id = st.stream_id
            if fmt <= 2:
                ts_field = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                if fmt <= 1:
                    length = (buf[pos + 3] << 16) | (buf[pos + 4] << 8) | buf[pos + 5]
                    type_id = buf[pos + 6]
                    if fmt == 0:
                        stream_id = int.from_bytes(buf[pos + 7 : pos + 11], "little")
            pos += hsize
            ext: int | None = None
            if fmt <= 2 and ts_field == EXTENDED:
                if n - pos < 4:
                    pos = start
                    break
                ext = int.from_bytes(buf[pos : pos + 4], "big")
                pos += 4
            elif fmt == 3 and st.ext is not None:
                # Most peers repeat the extended timestamp in type 3 chunks, some do not: take it
                # only when it is there (the same value as in the header it continues).
                if n - pos < 4:
                    pos = start
                    break
                if int.from_bytes(buf[pos : pos + 4], "big") == st.ext:
                    ext = st.ext
                    pos += 4
            new_message = not st.in_message
            if fmt != 3 and st.in_message:
                raise ChunkError(f"chunk stream {csid}: new header before the message ended")
            if length > self.max_message_size:
                raise ChunkError(f"message of {length} bytes is over the limit of {self.max_message_size}")
            remaining = length - st.received if not new_message else length
            take = min(self.chunk_size, remaining)
            if n - pos < take:
                pos = start
                break
            # The whole chunk is here: commit the header to the chunk stream state.
            if new_message:
                value = ext if ext is not None else ts_field
                if fmt == 0:
                    st.timestamp = value
                    st.delta = value
                elif fmt in (1, 2):
                    st.delta = value
                    st.timestamp = (st.timestamp + value) & 0xFFFFFFFF
                else:
                    st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF
                if fmt != 3:
                    st.ext = ext
                st.length, st.type_id, st.stream_id = length, type_id, stream_id
                st.started = True
                st.in_message = True
                st.received = 0
                st.parts = []
                self._streams[csid] = st
            if take:
                st.parts.append(bytes(buf[pos : pos + take]))
                st.received += take
                self._pending += take
                if self._pending > self.max_pending_bytes:
                    raise ChunkError("too many bytes held in partly received messages")
            pos += take
            if st.received >= st.length:
                payload = b"".join(st.parts) if len(st.parts) != 1 else st.parts[0]
                self._pending -= st.received
                st.parts = []
                st.received = 0
                st.in_message = False
                msg = Message(st.type_id, st.stream_id, st.timestamp, payload, csid)
                if msg.type_id == SET_CHUNK_SIZE and msg.stream_id == 0:
                    self._set_chunk_size(payload)
                elif msg.type_id == ABORT and msg.stream_id == 0:
                    self._abort(payload)
                else:
                    out.append(msg)
        if pos:
            del buf[:pos]
        return out

    def _set_chunk_size(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkError("Set Chunk Size message shorter than 4 bytes")
        size = int.from_bytes(payload[:4], "big")
        if size & 0x80000000 or size < 1:
            raise ChunkError(f"invalid chunk size {size}")
        if size > self.max_chunk_size:
            raise ChunkError(f"peer chunk size {size} is over the limit of {self.max_chunk_size}")
        self.chunk_size = size

    def _abort(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkError("Abort message shorter than 4 bytes")
        st = self._streams.get(int.from_bytes(payload[:4], "big"))
        if st is not None and st.in_message:
            self._pending -= st.received
            st.parts = []
            st.received = 0
            st.in_message = False


def basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= 65599:
        v = csid - 64
        return bytes(((fmt << 6) | 1, v & 0xFF, v >> 8))
    raise ValueError(f"chunk stream id {csid} out of range 2..65599")


def _split(payload: bytes, chunk_size: int, continuation: bytes) -> list[bytes]:
    parts = [payload[:chunk_size]]
    for off in range(chunk_size, len(payload), chunk_size):
        parts.append(continuation)
        parts.append(payload[off : off + chunk_size])
    return parts


def encode_message(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                   chunk_size: int) -> bytes:
    """One message as a type 0 chunk and type 3 continuations, independent of earlier state."""
    if len(payload) > 0xFFFFFF:
        raise ValueError("RTMP message payload over 16 MiB")
    timestamp &= 0xFFFFFFFF
    ext = timestamp >= EXTENDED
    header = (basic_header(0, csid) + (EXTENDED if ext else timestamp).to_bytes(3, "big")
              + len(payload).to_bytes(3, "big") + bytes((type_id,)) + struct.pack("<I", stream_id))
    ext_bytes = struct.pack(">I", timestamp) if ext else b""
    if len(payload) <= chunk_size:
        return header + ext_bytes + payload
    return b"".join([header, ext_bytes, *_split(payload, chunk_size, basic_header(3, csid) + ext_bytes)])


@dataclass(slots=True)
class _OutState:
    timestamp: int
    delta: int
    length: int
    type_id: int
    stream_id: int


class ChunkWriter:
    """Serializes messages for one connection, with header compression per chunk stream."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self._streams: dict[int, _OutState] = {}

    def reset(self, csid: int | None = None) -> None:
        """Forget header state (after bytes from `encode_message` went out on the same chunk stream)."""
        if csid is None:
            self._streams.clear()
        else:
            self._streams.pop(csid, None)

    def write(self, msg: Message) -> bytes:
        payload = msg.payload
        if len(payload) > 0xFFFFFF:
            raise ValueError("RTMP message payload over 16 MiB")
        csid = msg.csid
        ts = msg.timestamp & 0xFFFFFFFF
        prev = self._streams.get(csid)
        if prev is None or prev.stream_id != msg.stream_id or ts < prev.timestamp:
            fmt, field_value = 0, ts
        else:
            delta = ts - prev.timestamp
            if prev.length != len(payload) or prev.type_id != msg.type_id:
                fmt = 1
            elif delta != prev.delta:
                fmt = 2
            else:
                fmt = 3
            field_value = delta
        ext = field_value >= EXTENDED
        ts_field = EXTENDED if ext else field_value
        header = bytearray(basic_header(fmt, csid))
        if fmt <= 2:
            header += ts_field.to_bytes(3, "big")
        if fmt <= 1:
            header += len(payload).to_bytes(3, "big") + bytes((msg.type_id,))
        if fmt == 0:
            header += struct.pack("<I", msg.stream_id)
        ext_bytes = struct.pack(">I", field_value) if ext else b""
        if fmt == 3 and prev is not None and prev.delta >= EXTENDED:
            ext_bytes = struct.pack(">I", prev.delta)
        self._streams[csid] = _OutState(ts, field_value if fmt != 3 else (prev.delta if prev else 0),
                                        len(payload), msg.type_id, msg.stream_id)
        if fmt == 0:
            self._streams[csid].delta = ts
        cont = basic_header(3, csid) + ext_bytes
        return b"".join([bytes(header), ext_bytes, *_split(payload, self.chunk_size, cont)])


def set_chunk_size(size: int) -> Message:
    return Message(SET_CHUNK_SIZE, 0, 0, struct.pack(">I", size), 2)


def abort(csid: int) -> Message:
    return Message(ABORT, 0, 0, struct.pack(">I", csid), 2)


def acknowledgement(sequence: int) -> Message:
    return Message(ACK, 0, 0, struct.pack(">I", sequence & 0xFFFFFFFF), 2)


def window_ack_size(size: int) -> Message:
    return Message(WINDOW_ACK_SIZE, 0, 0, struct.pack(">I", size), 2)


def set_peer_bandwidth(size: int, limit_type: int = 2) -> Message:
    return Message(SET_PEER_BANDWIDTH, 0, 0, struct.pack(">IB", size, limit_type), 2)


def user_control(event: int, *values: int) -> Message:
    return Message(USER_CONTROL, 0, 0, struct.pack(">H", event) + b"".join(struct.pack(">I", v) for v in values), 2)
