"""The NetConnection/NetStream state machine: our client against our server, sans I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtmp import amf0
from hivecast.rtmp.chunk import AUDIO, COMMAND_AMF0, COMMAND_AMF3, ChunkWriter, Message
from hivecast.rtmp.errors import ProtocolError, RtmpError
from hivecast.rtmp.session import (
    ClientSession,
    Connected,
    ConnectRequested,
    MediaReceived,
    MetadataReceived,
    PlayRequested,
    PublishRequested,
    ServerSession,
    StatusReceived,
    StreamClosed,
    StreamCreated,
    command,
    split_aggregate,
)


def pump(client: ClientSession, server: ServerSession) -> tuple[list[object], list[object]]:
    s_events = server.receive_data(client.data_to_send())
    c_events = client.receive_data(server.data_to_send())
    return list(s_events), list(c_events)


def connected_pair() -> tuple[ClientSession, ServerSession]:
    client, server = ClientSession(), ServerSession()
    client.connect("live", "rtmp://127.0.0.1/live", fourcc_list=["hvc1"])
    s_ev, _ = pump(client, server)
    assert isinstance(s_ev[0], ConnectRequested) and s_ev[0].app == "live" and s_ev[0].fourcc_list == ["hvc1"]
    server.accept_connect(fourcc_list=["hvc1"])
    _, c_ev = pump(client, server)
    assert isinstance(c_ev[0], Connected) and c_ev[0].info["code"] == "NetConnection.Connect.Success"
    return client, server


def test_publish_flow_and_media() -> None:
    client, server = connected_pair()
    client.create_stream("cam")
    _, c_ev = pump(client, server)
    assert [type(e) for e in c_ev] == [StreamCreated] and client.stream_id == 1
    client.publish("cam?key=k")
    s_ev, _ = pump(client, server)
    assert s_ev == [PublishRequested(1, "cam?key=k", "live")]
    server.accept_publish(1)
    _, c_ev = pump(client, server)
    assert any(isinstance(e, StatusReceived) and e.code == "NetStream.Publish.Start" for e in c_ev)
    client.send_metadata({"width": 320.0})
    client.send_media(AUDIO, 20, b"\xaf\x01abc")
    s_ev, _ = pump(client, server)
    assert isinstance(s_ev[0], MetadataReceived) and s_ev[0].metadata == {"width": 320.0}
    assert isinstance(s_ev[1], MediaReceived) and s_ev[1].message.payload == b"\xaf\x01abc"
    client.close_stream("cam")
    s_ev, _ = pump(client, server)
    assert StreamClosed(1) in s_ev


def test_play_flow_and_refusals() -> None:
    client, server = connected_pair()
    client.create_stream()
    pump(client, server)
    client.play("nope")
    s_ev, _ = pump(client, server)
    assert s_ev == [PlayRequested(1, "nope")]
    server.reject_play(1, "NetStream.Play.StreamNotFound", "nope is not live")
    _, c_ev = pump(client, server)
    assert any(isinstance(e, StatusReceived) and e.level == "error" for e in c_ev)
    client.play("yes")
    pump(client, server)
    server.accept_play(1)
    _, c_ev = pump(client, server)
    codes = [e.code for e in c_ev if isinstance(e, StatusReceived)]
    assert codes == ["NetStream.Play.Reset", "NetStream.Play.Start"]


def test_out_of_order_commands_are_protocol_errors() -> None:
    w = ChunkWriter()
    server = ServerSession()
    early = b"".join(w.write(command("publish", 0, None, "x", stream_id=1)) for _ in range(5))
    with pytest.raises(ProtocolError, match="before connect"):
        server.receive_data(early)
    _, server = connected_pair()
    with pytest.raises(ProtocolError, match="not created"):
        server.receive_data(ChunkWriter().write(command("publish", 0, None, "x", stream_id=7)))
    _, server = connected_pair()
    with pytest.raises(ProtocolError, match="not publishing"):
        server.receive_data(ChunkWriter().write(Message(AUDIO, 1, 0, b"\xaf\x01", 4)))
    _, server = connected_pair()
    with pytest.raises(ProtocolError, match="too many streams"):
        server.receive_data(b"".join(ChunkWriter().write(command("createStream", float(i), None)) for i in range(20)))
    _, server = connected_pair()
    with pytest.raises(ProtocolError, match="bad command"):
        server.receive_data(ChunkWriter().write(Message(COMMAND_AMF0, 0, 0, b"\x02\xff\xff", 3)))


def test_reject_connect_and_amf3_command() -> None:
    server = ServerSession()
    payload = b"\x00" + amf0.encode("connect", 1.0, {"app": "other"})
    ev = server.receive_data(ChunkWriter().write(Message(COMMAND_AMF3, 0, 0, payload, 3)))
    assert isinstance(ev[0], ConnectRequested) and ev[0].app == "other"
    server.reject_connect("unknown application")
    reply = ClientSession().reader.feed(server.data_to_send())
    assert amf0.decode_all(reply[0].payload)[3]["code"] == "NetConnection.Connect.Rejected"
    assert server.state.name == "CLOSED"


def test_ping_and_ack() -> None:
    from hivecast.rtmp.chunk import PING_REQUEST, user_control, window_ack_size

    client, server = connected_pair()
    w = ChunkWriter()
    server.receive_data(w.write(user_control(PING_REQUEST, 1234)))
    reply = client.reader.feed(server.data_to_send())
    assert reply[-1].type_id == 4 and reply[-1].payload[2:6] == (1234).to_bytes(4, "big")
    server.receive_data(w.write(window_ack_size(100)) + w.write(Message(20, 0, 0, amf0.encode("x", 0.0, None), 3)))
    assert any(m.type_id == 3 for m in client.reader.feed(server.data_to_send()))


def test_aggregate_split() -> None:
    sub = bytes([9]) + (3).to_bytes(3, "big") + (100).to_bytes(3, "big") + b"\x00" + b"\x00\x00\x00" + b"abc" + (14).to_bytes(4, "big")
    sub += bytes([8]) + (1).to_bytes(3, "big") + (120).to_bytes(3, "big") + b"\x00" + b"\x00\x00\x00" + b"z" + (12).to_bytes(4, "big")
    parts = split_aggregate(Message(22, 1, 1000, sub, 4))
    assert [(p.type_id, p.timestamp, p.payload) for p in parts] == [(9, 1000, b"abc"), (8, 1020, b"z")]
    with pytest.raises(ProtocolError):
        split_aggregate(Message(22, 1, 0, sub[:-3], 4))


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22]), st.integers(0, 3),
                          st.binary(max_size=64)), max_size=12), st.booleans())
@settings(max_examples=300, deadline=None)
def test_server_session_fuzz(msgs: list[tuple[int, int, bytes]], connect_first: bool) -> None:
    server = ServerSession()
    w = ChunkWriter()
    data = _connect_bytes(w) if connect_first else b""
    data += b"".join(w.write(Message(t, sid, 0, payload, 3 + (t % 5))) for t, sid, payload in msgs)
    try:
        for event in server.receive_data(data):
            if isinstance(event, ConnectRequested):
                server.accept_connect()
    except RtmpError:
        pass


def _connect_bytes(w: ChunkWriter) -> bytes:
    return w.write(command("connect", 1.0, {"app": "live"}))
