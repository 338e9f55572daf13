"""The real-time layer end to end on one node with real WebSocket clients (ours and `websockets`):
auth, chat and danmaku, history replay from the database, presence, moderation, bus events, and a
killed client that must not stall its room."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from hivecast.auth.tokens import issue_access_token
from hivecast.ws import ConnectionClosed, HandshakeError, WebSocket, connect

SECRET = "s" * 40


def token(user: str, role: str = "viewer") -> str:
    return issue_access_token(secret=SECRET, subject=user, role=role, name=user.title())


def ws_url(node: Any, path: str) -> str:
    return f"ws://127.0.0.1:{node.services['http_port']}{path}"


async def next_of(ws: WebSocket, kind: str, pred: Callable[[dict[str, Any]], bool] = lambda m: True,
                  limit: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(limit):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind and pred(msg):
                return msg


async def refused_with(ws: WebSocket, limit: float = 10.0) -> int | None:
    """Read until the server closes the connection; its close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(limit):
            while True:
                await ws.recv()
    return ws.close_code


@pytest.fixture
async def node(node_factory: Any) -> Any:
    return await node_factory(auth={"jwt_secret": SECRET}, ws={"chat_rate_count": 3, "chat_rate_window": 60.0,
                                                               "chat_max_length": 100})


async def test_chat_between_clients_with_history_and_presence(node: Any) -> None:
    alice = await connect(ws_url(node, f"/ws/live/demo?token={token('alice')}"))
    welcome = await next_of(alice, "welcome")
    assert welcome["user"]["id"] == "alice" and welcome["can_send"]
    assert (await next_of(alice, "history"))["messages"] == []
    viewer = await connect(ws_url(node, "/ws/live/demo"))  # anonymous: read-only
    assert (await next_of(viewer, "welcome"))["can_send"] is False
    await next_of(alice, "presence", lambda m: m["viewers"] == 2)

    await alice.send(json.dumps({"type": "chat", "text": "hello room"}))
    got = await next_of(viewer, "chat")
    assert got["text"] == "hello room" and got["user"] == {"id": "alice", "name": "Alice"}
    await alice.send(json.dumps({"type": "danmaku", "text": "wow", "media_time": 42.5, "color": "#00ff00"}))
    dm = await next_of(viewer, "danmaku")
    assert dm["media_time"] == 42.5 and dm["color"] == "#00ff00" and dm["mode"] == "scroll"

    await viewer.send(json.dumps({"type": "chat", "text": "can I?"}))
    assert (await next_of(viewer, "error"))["code"] == "unauthorized"
    await viewer.send(json.dumps({"type": "auth", "token": token("bob")}))
    assert (await next_of(viewer, "welcome"))["user"]["id"] == "bob"

    late = await connect(ws_url(node, "/ws/live/demo"))
    history = (await next_of(late, "history"))["messages"]
    assert [m["text"] for m in history] == ["hello room", "wow"]
    for ws in (alice, viewer, late):
        await ws.close()


async def test_history_survives_a_restart(node_factory: Any, tmp_path: Any) -> None:
    flags = {"auth": {"jwt_secret": SECRET}, "data_dir": tmp_path / "shared"}
    first = await node_factory(**flags)
    ws = await connect(ws_url(first, f"/ws/live/keep?token={token('carol')}"))
    await ws.send(json.dumps({"type": "chat", "text": "persisted"}))
    await next_of(ws, "chat")
    await ws.close()
    await first.stop()
    second = await node_factory(**flags)
    ws2 = await connect(ws_url(second, "/ws/live/keep"))
    assert [m["text"] for m in (await next_of(ws2, "history"))["messages"]] == ["persisted"]
    await ws2.close()


async def test_mute_and_ban_survive_a_restart(node_factory: Any, tmp_path: Any) -> None:
    flags = {"auth": {"jwt_secret": SECRET}, "data_dir": tmp_path / "shared"}
    first = await node_factory(**flags)
    mod = await connect(ws_url(first, f"/ws/live/strict?token={token('mia', 'streamer')}"))
    await mod.send(json.dumps({"type": "mute", "user": "dave"}))
    await next_of(mod, "moderation", lambda m: m["action"] == "mute")
    await mod.send(json.dumps({"type": "mute", "user": "erin", "seconds": 600}))
    await next_of(mod, "moderation", lambda m: m["user"] == "erin")
    await mod.send(json.dumps({"type": "ban", "user": "troll"}))
    await next_of(mod, "moderation", lambda m: m["action"] == "ban")
    await mod.send(json.dumps({"type": "mute", "user": "fred", "seconds": 600}))
    await mod.send(json.dumps({"type": "unmute", "user": "fred"}))
    await next_of(mod, "moderation", lambda m: m["action"] == "unmute")
    await mod.close()
    await first.stop()

    second = await node_factory(**flags)  # same data dir, so the same SQLite database
    for muted in ("dave", "erin"):
        ws = await connect(ws_url(second, f"/ws/live/strict?token={token(muted)}"))
        await next_of(ws, "history")
        await ws.send(json.dumps({"type": "chat", "text": "still here?"}))
        assert (await next_of(ws, "error"))["code"] == "muted"
        await ws.close()
    banned = await connect(ws_url(second, f"/ws/live/strict?token={token('troll')}"))
    assert await refused_with(banned) == 4003
    unmuted = await connect(ws_url(second, f"/ws/live/strict?token={token('fred')}"))
    await unmuted.send(json.dumps({"type": "chat", "text": "free again"}))
    assert (await next_of(unmuted, "chat"))["text"] == "free again"
    await unmuted.close()


async def test_limits_rate_and_moderation(node: Any) -> None:
    import websockets

    mod = await connect(ws_url(node, f"/ws/live/modroom?token={token('mia', 'streamer')}"))
    assert (await next_of(mod, "welcome"))["moderator"] is True
    async with websockets.connect(ws_url(node, "/ws/live/modroom")) as troll:
        await troll.send(json.dumps({"type": "auth", "token": token("troll")}))
        await troll.send(json.dumps({"type": "chat", "text": "x" * 101}))
        errors: list[str] = []
        async with asyncio.timeout(10):
            while not errors:
                m = json.loads(await troll.recv())
                if m["type"] == "error":
                    errors.append(m["code"])
        assert errors == ["too_long"]
        for i in range(4):
            await troll.send(json.dumps({"type": "chat", "text": f"spam {i}"}))
        codes = []
        async with asyncio.timeout(10):
            while "rate_limited" not in codes:
                m = json.loads(await troll.recv())
                if m["type"] == "error":
                    codes.append(m["code"])
        spam = await next_of(mod, "chat", lambda m: m["text"] == "spam 0")
        await troll.send(json.dumps({"type": "mute", "user": "mia"}))
        assert (await next_of(mod, "chat", lambda m: m["text"] == "spam 2"))
        # the moderator deletes a message, mutes and finally bans the troll
        await mod.send(json.dumps({"type": "delete", "id": spam["id"]}))
        assert (await next_of(mod, "deleted"))["id"] == spam["id"]
        await mod.send(json.dumps({"type": "mute", "user": "troll", "seconds": 600}))
        await next_of(mod, "moderation", lambda m: m["action"] == "mute")
        await mod.send(json.dumps({"type": "ban", "user": "troll"}))
        await next_of(mod, "moderation", lambda m: m["action"] == "ban")
        async with asyncio.timeout(10):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await troll.recv()
        assert troll.close_code == 4003
    again = await connect(ws_url(node, f"/ws/live/modroom?token={token('troll')}"))
    assert await refused_with(again) == 4003
    late = await connect(ws_url(node, "/ws/live/modroom"))
    texts = [m["text"] for m in (await next_of(late, "history"))["messages"]]
    assert "spam 0" not in texts and "spam 1" in texts
    await mod.close()
    await late.close()


async def test_bad_tokens_and_private_events(node_factory: Any) -> None:
    strict = await node_factory(auth={"jwt_secret": SECRET}, ws={"anonymous_read": False})
    with pytest.raises(HandshakeError) as info:
        await connect(ws_url(strict, "/ws/live/x?token=garbage"))
    assert info.value.status == 401
    anon = await connect(ws_url(strict, "/ws/live/x"))
    await anon.send(json.dumps({"type": "chat", "text": "no auth"}))
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            await anon.recv()
    assert anon.close_code == 4001
    viewer_events = await connect(ws_url(strict, f"/ws/events?token={token('v')}"))
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            await viewer_events.recv()
    assert viewer_events.close_code == 4003


async def test_bus_events_reach_rooms_and_dashboards(node: Any) -> None:
    room = await connect(ws_url(node, "/ws/live/cam1"))
    dash = await connect(ws_url(node, f"/ws/events?token={token('root', 'admin')}"))
    await next_of(room, "history")
    await next_of(dash, "welcome")
    node.bus.publish("stream.live", {"name": "cam1"})
    node.bus.publish("stream.qos", {"name": "cam1", "bitrate": 4_000_000, "loss": 0.01})
    node.bus.publish("packaging.progress", {"id": "vod7", "percent": 40})
    ev = await next_of(room, "event")
    assert ev == {"type": "event", "topic": "stream.live", "data": {"name": "cam1"}}
    assert (await next_of(room, "event"))["data"]["bitrate"] == 4_000_000
    topics = [(await next_of(dash, "event"))["topic"] for _ in range(3)]
    assert topics == ["stream.live", "stream.qos", "packaging.progress"]
    await room.close()
    await dash.close()


async def test_killed_client_never_stalls_the_room(node: Any) -> None:
    """One member stops reading and another is killed mid-stream; the rest keep getting every message."""
    import socket

    sender = await connect(ws_url(node, f"/ws/live/busy?token={token('sam', 'admin')}"))
    readers = [await connect(ws_url(node, "/ws/live/busy")) for _ in range(3)]
    stuck = await connect(ws_url(node, "/ws/live/busy"))
    stuck_sock = stuck.channel._owner.transport  # type: ignore[attr-defined]
    stuck_sock.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck_sock.pause_reading()
    killed = await connect(ws_url(node, "/ws/live/busy"))
    killed.channel.abort()
    for r in readers:
        await next_of(r, "history")
    text = "y" * 90
    async with asyncio.timeout(30):
        for i in range(60):
            # admins are not rate limited by a bigger bucket: send through the hub directly
            await node.services["realtime_hub"].publish("busy", "chat", {"type": "chat", "id": str(i),
                                                                         "room": "busy", "text": text * 50})
        for r in readers:
            got = 0
            while got < 60:
                m = json.loads(await r.recv())
                if m["type"] == "chat":
                    assert m["id"] == str(got)
                    got += 1
    server = node.services["ws_server"]
    assert server.dropped_slow >= 0
    for r in (sender, *readers):
        await r.close()
