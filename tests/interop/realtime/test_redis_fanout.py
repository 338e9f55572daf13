"""Two nodes sharing a real Redis (127.0.0.1:6379): a room spans both, presence adds up, moderation
applies everywhere, and a killed client on one node never stalls the room on the other."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from typing import Any

import pytest

from hivecast.auth.tokens import issue_access_token
from hivecast.ws import connect
from tests.e2e.realtime.test_rooms import SECRET, next_of, token, ws_url

pytestmark = pytest.mark.interop
REDIS = "redis://127.0.0.1:6379/0"


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
async def two_nodes(node_factory: Any) -> tuple[Any, Any]:
    if not redis_up():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    flags = {"auth": {"jwt_secret": SECRET}, "redis_url": REDIS}
    a = await node_factory(**flags)
    b = await node_factory(**flags)
    return a, b


async def test_message_on_node_a_reaches_clients_on_node_b(two_nodes: tuple[Any, Any]) -> None:
    a, b = two_nodes
    room = "r" + uuid.uuid4().hex[:8]
    on_b = [await connect(ws_url(b, f"/ws/live/{room}")) for _ in range(3)]
    killed = await connect(ws_url(b, f"/ws/live/{room}"))
    killed.channel.abort()
    sender = await connect(ws_url(a, f"/ws/live/{room}?token={token('ann')}"))
    assert (await next_of(on_b[0], "welcome"))["node"] != (await next_of(sender, "welcome"))["node"]
    # presence spans nodes: 1 on A + 3 on B
    await next_of(sender, "presence", lambda m: m["viewers"] == 4, limit=15)
    for i in range(3):
        await sender.send(json.dumps({"type": "chat", "text": f"from A {i}"}))
    for ws in on_b:
        texts = [(await next_of(ws, "chat"))["text"] for _ in range(3)]
        assert texts == ["from A 0", "from A 1", "from A 2"]
    # moderation on B applies to a sender on A
    mod = await connect(ws_url(b, f"/ws/live/{room}?token={token('boss', 'admin')}"))
    await mod.send(json.dumps({"type": "mute", "user": "ann", "seconds": 60}))
    await next_of(sender, "moderation", lambda m: m["action"] == "mute")
    await sender.send(json.dumps({"type": "chat", "text": "muted?"}))
    assert (await next_of(sender, "error"))["code"] == "muted"
    for ws in (*on_b, sender, mod):
        await ws.close()


async def test_bus_event_on_one_node_reaches_dashboard_on_the_other(two_nodes: tuple[Any, Any]) -> None:
    a, b = two_nodes
    admin = issue_access_token(secret=SECRET, subject="root", role="admin")
    dash = await connect(ws_url(b, f"/ws/events?token={admin}"))
    await next_of(dash, "welcome")
    await asyncio.sleep(0.2)  # let B's subscription settle before A publishes
    name = "cam-" + uuid.uuid4().hex[:6]
    a.bus.publish("stream.live", {"name": name})
    ev = await next_of(dash, "event", lambda m: m["data"].get("name") == name, limit=15)
    assert ev["topic"] == "stream.live"
    await dash.close()
