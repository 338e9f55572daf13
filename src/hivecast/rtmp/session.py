"""NetConnection and NetStream commands over the chunk stream, sans I/O: the server and the client.

The server session runs this table (every other command in a state is a ProtocolError, and the
adapter drops the peer):

    state       command                  reply / event
    CONNECT     connect                  ConnectRequested -> accept_connect(): Window Ack Size,
                                         Set Peer Bandwidth, Set Chunk Size, _result NetConnection.Connect.Success
                                         (reject_connect(): _error NetConnection.Connect.Rejected)
    CONNECTED   releaseStream/FCPublish  _result (null)        FCUnpublish: _result, onFCUnpublish
                createStream             _result stream id (at most `max_streams`)
                publish (on a stream)    PublishRequested -> accept_publish(): Stream Begin, onStatus
                                         NetStream.Publish.Start; reject_publish(): onStatus error
                                         (NetStream.Publish.BadName when the name is in use,
                                         NetStream.Publish.Denied for a wrong key)
                play (on a stream)       PlayRequested -> accept_play(): Stream Begin, onStatus
                                         NetStream.Play.Reset and .Start, |RtmpSampleAccess;
                                         reject_play(): onStatus NetStream.Play.StreamNotFound
                deleteStream/closeStream StreamClosed
                media, @setDataFrame     MediaReceived (only on a publishing stream)

Protocol control messages and pings are answered here; acknowledgements are sent when the peer
asked for them with Window Acknowledgement Size.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from hivecast.rtmp import amf0, amf3
from hivecast.rtmp.chunk import (
    ACK,
    AGGREGATE,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    PING_REQUEST,
    PING_RESPONSE,
    SET_PEER_BANDWIDTH,
    STREAM_BEGIN,
    STREAM_EOF,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    Message,
    acknowledgement,
    set_chunk_size,
    set_peer_bandwidth,
    user_control,
    window_ack_size,
)
from hivecast.rtmp.errors import AmfError, ProtocolError, StatusError

CSID_COMMAND = 3
CSID_STATUS = 5
CSID_AUDIO = 4
CSID_VIDEO = 6
CSID_DATA = 5


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_chunk_size: int = 1 << 20
    max_message_size: int = 8 << 20
    max_chunk_streams: int = 64
    max_streams: int = 8
    max_amf_depth: int = 16
    max_amf_items: int = 10_000
    max_commands_before_connect: int = 4


# -- events ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConnectRequested:
    app: str
    tc_url: str
    params: dict[str, Any]
    fourcc_list: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PublishRequested:
    stream_id: int
    name: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class PlayRequested:
    stream_id: int
    name: str


@dataclass(frozen=True, slots=True)
class StreamClosed:
    stream_id: int


@dataclass(frozen=True, slots=True)
class MediaReceived:
    stream_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    stream_id: int
    metadata: dict[str, Any]


# Client-side events.
@dataclass(frozen=True, slots=True)
class Connected:
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamCreated:
    stream_id: int


@dataclass(frozen=True, slots=True)
class StatusReceived:
    stream_id: int
    level: str
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class CommandFailed:
    command: str
    code: str
    description: str


Event = (ConnectRequested | PublishRequested | PlayRequested | StreamClosed | MediaReceived | MetadataReceived
         | Connected | StreamCreated | StatusReceived | CommandFailed)


class State(enum.Enum):
    CONNECT = "waiting for connect"
    CONNECTING = "connect pending"
    CONNECTED = "connected"
    CLOSED = "closed"


class StreamState(enum.Enum):
    CREATED = "created"
    PUBLISH_PENDING = "publish pending"
    PUBLISHING = "publishing"
    PLAY_PENDING = "play pending"
    PLAYING = "playing"


def command(name: str, txn: float, obj: Any, *args: Any, stream_id: int = 0, csid: int = CSID_COMMAND) -> Message:
    return Message(COMMAND_AMF0, stream_id, 0, amf0.encode(name, txn, obj, *args), csid)


def status(stream_id: int, level: str, code: str, description: str, **extra: Any) -> Message:
    info: dict[str, Any] = {"level": level, "code": code, "description": description, **extra}
    return command("onStatus", 0, None, info, stream_id=stream_id, csid=CSID_STATUS)


def split_aggregate(msg: Message, max_parts: int = 4096) -> list[Message]:
    """The sub-messages of an aggregate message (RTMP specification 7.1.6), rebased on its timestamp."""
    out: list[Message] = []
    data = msg.payload
    pos = 0
    base: int | None = None
    while pos + 11 <= len(data):
        type_id = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        if pos + 11 + size + 4 > len(data):
            raise ProtocolError("aggregate message truncated")
        if base is None:
            base = ts
        out.append(Message(type_id, msg.stream_id, (msg.timestamp + ts - base) & 0xFFFFFFFF,
                           bytes(data[pos + 11 : pos + 11 + size]), msg.csid))
        pos += 11 + size + 4
        if len(out) > max_parts:
            raise ProtocolError("aggregate message with too many parts")
    return out


class _Base:
    def __init__(self, limits: SessionLimits, chunk_size: int) -> None:
        self.limits = limits
        self.reader = ChunkReader(max_chunk_size=limits.max_chunk_size, max_message_size=limits.max_message_size,
                                  max_chunk_streams=limits.max_chunk_streams,
                                  max_pending_bytes=2 * limits.max_message_size)
        self.writer = ChunkWriter()
        self.out_chunk_size = chunk_size
        self._out: list[bytes] = []
        self._peer_window = 0
        self._last_ack = 0
        self.peer_bandwidth = 0

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, msg: Message) -> None:
        self._out.append(self.writer.write(msg))

    def send_raw(self, data: bytes) -> None:
        """Bytes that are already chunked (shared media serialization) go out in order with our own."""
        self._out.append(data)

    def _decode_command(self, msg: Message) -> list[Any]:
        payload = msg.payload
        try:
            if msg.type_id in (COMMAND_AMF3, DATA_AMF3):
                # A leading 0 byte, then AMF0 values (which may switch to AMF3 per value).
                if payload[:1] == b"\x00":
                    payload = payload[1:]
                    return amf0.decode_all(payload, max_depth=self.limits.max_amf_depth,
                                           max_items=self.limits.max_amf_items)
                return amf3.decode_all(payload, max_depth=self.limits.max_amf_depth,
                                       max_items=self.limits.max_amf_items)
            return amf0.decode_all(payload, max_depth=self.limits.max_amf_depth, max_items=self.limits.max_amf_items)
        except AmfError as exc:
            raise ProtocolError(f"bad command message: {exc}") from None

    def _control(self, msg: Message) -> bool:
        """Answer protocol control messages; True when `msg` was one."""
        t = msg.type_id
        if t == WINDOW_ACK_SIZE and len(msg.payload) >= 4:
            self._peer_window = int.from_bytes(msg.payload[:4], "big")
            return True
        if t == SET_PEER_BANDWIDTH and len(msg.payload) >= 4:
            self.peer_bandwidth = int.from_bytes(msg.payload[:4], "big")
            return True
        if t == ACK:
            return True
        if t == USER_CONTROL:
            if len(msg.payload) >= 6 and int.from_bytes(msg.payload[:2], "big") == PING_REQUEST:
                self.send(user_control(PING_RESPONSE, int.from_bytes(msg.payload[2:6], "big")))
            return True
        return t in (1, 2)

    def _maybe_ack(self) -> None:
        received = self.reader.bytes_received
        if self._peer_window and received - self._last_ack >= self._peer_window:
            self._last_ack = received
            self.send(acknowledgement(received))


class ServerSession(_Base):
    def __init__(self, *, limits: SessionLimits | None = None, chunk_size: int = 4096,
                 window_ack: int = 2_500_000) -> None:
        super().__init__(limits or SessionLimits(), chunk_size)
        self.state = State.CONNECT
        self.window_ack = window_ack
        self.app = ""
        self.tc_url = ""
        self.object_encoding = 0.0
        self.streams: dict[int, StreamState] = {}
        self.stream_names: dict[int, str] = {}
        self._next_stream_id = 1
        self._connect_txn = 1.0
        self._early = 0

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is State.CLOSED:
            return []
        events: list[Event] = []
        for msg in self.reader.feed(data):
            self._handle(msg, events)
        self._maybe_ack()
        return events

    def _handle(self, msg: Message, events: list[Event]) -> None:
        if self._control(msg):
            return
        t = msg.type_id
        if t in (COMMAND_AMF0, COMMAND_AMF3):
            self._command(msg, self._decode_command(msg), events)
        elif t in (AUDIO, VIDEO):
            self._require_publishing(msg.stream_id)
            events.append(MediaReceived(msg.stream_id, msg))
        elif t in (DATA_AMF0, DATA_AMF3):
            self._require_publishing(msg.stream_id)
            values = self._decode_command(msg)
            if values and values[0] == "@setDataFrame":
                values = values[1:]
            if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
                events.append(MetadataReceived(msg.stream_id, dict(values[1])))
        elif t == AGGREGATE:
            self._require_publishing(msg.stream_id)
            for sub in split_aggregate(msg):
                if sub.type_id in (AUDIO, VIDEO):
                    events.append(MediaReceived(msg.stream_id, sub))
        # Shared objects and unknown types are ignored, as Flash Media Server does.

    def _require_publishing(self, stream_id: int) -> None:
        if self.streams.get(stream_id) not in (StreamState.PUBLISHING, StreamState.PUBLISH_PENDING):
            raise ProtocolError(f"media on stream {stream_id}, which is not publishing")

    def _command(self, msg: Message, values: list[Any], events: list[Event]) -> None:
        if not values or not isinstance(values[0], str):
            raise ProtocolError("command message without a command name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[3:]
        if self.state is State.CONNECT:
            if name != "connect":
                self._early += 1
                if self._early > self.limits.max_commands_before_connect:
                    raise ProtocolError(f"{name!r} before connect")
                return
            obj = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            self.app = str(obj.get("app", "")).strip("/")
            self.tc_url = str(obj.get("tcUrl", ""))
            enc = obj.get("objectEncoding", 0.0)
            self.object_encoding = float(enc) if isinstance(enc, (int, float)) else 0.0
            self._connect_txn = txn or 1.0
            self.state = State.CONNECTING
            fourccs = obj.get("fourCcList")
            events.append(ConnectRequested(self.app, self.tc_url, obj,
                                           [str(f) for f in fourccs] if isinstance(fourccs, list) else []))
            return
        if self.state is State.CONNECTING:
            raise ProtocolError(f"{name!r} while connect is pending")
        if name == "connect":
            raise ProtocolError("connect twice on one connection")
        if name == "getStreamLength":
            self.send(command("_result", txn, None, 0.0))  # a live stream has no length
        elif name in ("releaseStream", "FCPublish", "checkBandwidth", "_checkbw"):
            if txn:
                self.send(command("_result", txn, None, amf0.UNDEFINED_VALUE))
            if name == "FCPublish" and args and isinstance(args[0], str):
                self.send(command("onFCPublish", 0, None, {"code": "NetStream.Publish.Start", "description": args[0]}))
        elif name == "FCUnpublish":
            if txn:
                self.send(command("_result", txn, None, amf0.UNDEFINED_VALUE))
            if args and isinstance(args[0], str):
                self.send(command("onFCUnpublish", 0, None,
                                  {"code": "NetStream.Unpublish.Success", "description": args[0]}))
        elif name == "createStream":
            if len(self.streams) >= self.limits.max_streams:
                self.send(command("_error", txn, None, {"level": "error", "code": "NetConnection.Call.Failed",
                                                       "description": "too many streams"}))
                raise ProtocolError("too many streams on one connection")
            sid = self._next_stream_id
            self._next_stream_id += 1
            self.streams[sid] = StreamState.CREATED
            self.send(command("_result", txn, None, float(sid)))
        elif name == "publish":
            sid = msg.stream_id
            if self.streams.get(sid) is not StreamState.CREATED:
                raise ProtocolError(f"publish on stream {sid}, which is not created or is busy")
            stream_name = args[0] if args and isinstance(args[0], str) else ""
            kind = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
            self.streams[sid] = StreamState.PUBLISH_PENDING
            self.stream_names[sid] = stream_name
            events.append(PublishRequested(sid, stream_name, kind))
        elif name == "play":
            sid = msg.stream_id
            if self.streams.get(sid) is not StreamState.CREATED:
                raise ProtocolError(f"play on stream {sid}, which is not created or is busy")
            stream_name = args[0] if args and isinstance(args[0], str) else ""
            self.streams[sid] = StreamState.PLAY_PENDING
            self.stream_names[sid] = stream_name
            events.append(PlayRequested(sid, stream_name))
        elif name in ("deleteStream", "closeStream"):
            sid = int(args[0]) if name == "deleteStream" and args and isinstance(args[0], float) else msg.stream_id
            if sid in self.streams:
                if name == "deleteStream":
                    del self.streams[sid]
                else:
                    self.streams[sid] = StreamState.CREATED
                self.stream_names.pop(sid, None)
                events.append(StreamClosed(sid))
        elif name in ("pause", "receiveAudio", "receiveVideo", "seek", "call", "_result", "_error", "onStatus"):
            pass
        # Unknown commands are ignored (FMS answers nothing to methods it does not know either).

    # -- replies ---------------------------------------------------------------------------
    def accept_connect(self, *, fourcc_list: list[str] | None = None) -> None:
        if self.state is not State.CONNECTING:
            raise ProtocolError("no connect pending")
        self.state = State.CONNECTED
        self.send(window_ack_size(self.window_ack))
        self.send(set_peer_bandwidth(self.window_ack, 2))
        self.send(set_chunk_size(self.out_chunk_size))
        self.writer.chunk_size = self.out_chunk_size
        props = {"fmsVer": "FMS/3,5,7,7009", "capabilities": 31.0, "mode": 1.0}
        info: dict[str, Any] = {"level": "status", "code": "NetConnection.Connect.Success",
                                "description": "Connection succeeded.", "objectEncoding": self.object_encoding}
        if fourcc_list:
            info["fourCcList"] = fourcc_list
        self.send(command("_result", self._connect_txn, props, info))
        self.send(user_control(STREAM_BEGIN, 0))

    def reject_connect(self, description: str) -> None:
        self.send(command("_error", self._connect_txn, None, {
            "level": "error", "code": "NetConnection.Connect.Rejected", "description": description}))
        self.state = State.CLOSED

    def accept_publish(self, stream_id: int) -> None:
        if self.streams.get(stream_id) is not StreamState.PUBLISH_PENDING:
            raise ProtocolError(f"no publish pending on stream {stream_id}")
        self.streams[stream_id] = StreamState.PUBLISHING
        name = self.stream_names.get(stream_id, "")
        self.send(user_control(STREAM_BEGIN, stream_id))
        self.send(status(stream_id, "status", "NetStream.Publish.Start", f"{name} is now published.",
                         details=name))

    def reject_publish(self, stream_id: int, code: str, description: str) -> None:
        self.send(status(stream_id, "error", code, description))
        if stream_id in self.streams:
            self.streams[stream_id] = StreamState.CREATED

    def accept_play(self, stream_id: int) -> None:
        if self.streams.get(stream_id) is not StreamState.PLAY_PENDING:
            raise ProtocolError(f"no play pending on stream {stream_id}")
        self.streams[stream_id] = StreamState.PLAYING
        name = self.stream_names.get(stream_id, "")
        self.send(user_control(STREAM_BEGIN, stream_id))
        self.send(status(stream_id, "status", "NetStream.Play.Reset", f"Playing and resetting {name}.", details=name))
        self.send(status(stream_id, "status", "NetStream.Play.Start", f"Started playing {name}.", details=name))
        self.send(Message(DATA_AMF0, stream_id, 0, amf0.encode("|RtmpSampleAccess", True, True), CSID_DATA))

    def reject_play(self, stream_id: int, code: str, description: str) -> None:
        self.send(status(stream_id, "error", code, description))
        if stream_id in self.streams:
            self.streams[stream_id] = StreamState.CREATED

    def end_play(self, stream_id: int) -> None:
        """The stream went offline under a player: Stream EOF and NetStream.Play.UnpublishNotify."""
        name = self.stream_names.get(stream_id, "")
        self.send(status(stream_id, "status", "NetStream.Play.UnpublishNotify", f"{name} is now unpublished."))
        self.send(user_control(STREAM_EOF, stream_id))


class ClientSession(_Base):
    """Our side as a client: connect, createStream, then publish or play."""

    def __init__(self, *, limits: SessionLimits | None = None, chunk_size: int = 4096) -> None:
        super().__init__(limits or SessionLimits(), chunk_size)
        self.state = State.CONNECT
        self._txn = 0
        self._pending: dict[float, str] = {}
        self.stream_id = 0

    def _next(self, name: str) -> float:
        self._txn += 1
        self._pending[float(self._txn)] = name
        return float(self._txn)

    def connect(self, app: str, tc_url: str, *, fourcc_list: list[str] | None = None) -> None:
        self.send(set_chunk_size(self.out_chunk_size))
        self.writer.chunk_size = self.out_chunk_size
        obj: dict[str, Any] = {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; hivecast)",
                               "tcUrl": tc_url}
        if fourcc_list:
            obj["fourCcList"] = fourcc_list
        self.send(command("connect", self._next("connect"), obj))
        self.state = State.CONNECTING

    def create_stream(self, name_for_publish: str | None = None) -> None:
        if name_for_publish is not None:
            self.send(command("releaseStream", self._next("releaseStream"), None, name_for_publish))
            self.send(command("FCPublish", self._next("FCPublish"), None, name_for_publish))
        self.send(command("createStream", self._next("createStream"), None))

    def publish(self, name: str) -> None:
        self.send(command("publish", 0, None, name, "live", stream_id=self.stream_id, csid=8))

    def play(self, name: str) -> None:
        self.send(window_ack_size(2_500_000))
        self.send(command("play", 0, None, name, -2000.0, stream_id=self.stream_id, csid=8))
        self.send(user_control(3, self.stream_id, 1000))  # Set Buffer Length

    def close_stream(self, name: str | None = None) -> None:
        if name is not None:
            self.send(command("FCUnpublish", self._next("FCUnpublish"), None, name))
        self.send(command("deleteStream", self._next("deleteStream"), None, float(self.stream_id)))

    def send_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        csid = CSID_AUDIO if type_id == AUDIO else CSID_VIDEO if type_id == VIDEO else CSID_DATA
        self.send(Message(type_id, self.stream_id, timestamp, payload, csid))

    def send_metadata(self, metadata: dict[str, Any]) -> None:
        self.send(Message(DATA_AMF0, self.stream_id, 0,
                          amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(metadata)), CSID_DATA))

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for msg in self.reader.feed(data):
            if self._control(msg):
                continue
            t = msg.type_id
            if t in (COMMAND_AMF0, COMMAND_AMF3):
                self._command(msg, self._decode_command(msg), events)
            elif t in (AUDIO, VIDEO):
                events.append(MediaReceived(msg.stream_id, msg))
            elif t in (DATA_AMF0, DATA_AMF3):
                try:
                    values = self._decode_command(msg)
                except ProtocolError:
                    continue
                if values and values[0] == "@setDataFrame":
                    values = values[1:]
                if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
                    events.append(MetadataReceived(msg.stream_id, dict(values[1])))
            elif t == AGGREGATE:
                for sub in split_aggregate(msg):
                    if sub.type_id in (AUDIO, VIDEO):
                        events.append(MediaReceived(msg.stream_id, sub))
        self._maybe_ack()
        return events

    def _command(self, msg: Message, values: list[Any], events: list[Event]) -> None:
        if not values or not isinstance(values[0], str):
            return
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        info = values[3] if len(values) > 3 else None
        if name in ("_result", "_error"):
            what = self._pending.pop(txn, "")
            if name == "_error":
                d = info if isinstance(info, dict) else {}
                events.append(CommandFailed(what, str(d.get("code", "")), str(d.get("description", ""))))
                return
            if what == "connect":
                self.state = State.CONNECTED
                events.append(Connected(info if isinstance(info, dict) else {}))
            elif what == "createStream" and isinstance(info, float):
                self.stream_id = int(info)
                events.append(StreamCreated(self.stream_id))
        elif name == "onStatus":
            d = info if isinstance(info, dict) else {}
            events.append(StatusReceived(msg.stream_id, str(d.get("level", "")), str(d.get("code", "")),
                                         str(d.get("description", ""))))


def raise_for_status(event: StatusReceived | CommandFailed) -> None:
    if isinstance(event, CommandFailed) or event.level == "error":
        raise StatusError(event.code, event.description)


__all__ = [
    "ClientSession",
    "CommandFailed",
    "ConnectRequested",
    "Connected",
    "Event",
    "MediaReceived",
    "MetadataReceived",
    "PlayRequested",
    "PublishRequested",
    "ServerSession",
    "SessionLimits",
    "State",
    "StatusReceived",
    "StreamClosed",
    "StreamCreated",
    "StreamState",
    "split_aggregate",
]
