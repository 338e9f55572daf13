"""The real-time hub: rooms per stream, their members on this node, and the fan-out between nodes.

A room's state changes only when an event comes back from the fan-out (Redis or in-process), so
every node applies chat, deletions, moderation and presence in the same order. Delivery to the
members of a room on this node is one `broadcast()`: the JSON is encoded and framed once, written
to every socket without waiting; a member that cannot keep up is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hivecast.auth.tokens import AccessClaims, InvalidToken, decode_access_token
from hivecast.realtime import schema
from hivecast.realtime.fanout import Fanout
from hivecast.realtime.history import ChatHistory
from hivecast.realtime.moderation import MODERATOR_ROLES, RoomModeration
from hivecast.realtime.sanctions import SanctionStore
from hivecast.ws import ConnectionClosed, WebSocket, broadcast

log = logging.getLogger(__name__)

ROOM_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,200}$")
EVENTS_ROOM = "_events"
PRESENCE_REFRESH = 5.0
PRESENCE_EXPIRY = 3 * PRESENCE_REFRESH
AUTH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class HubConfig:
    anonymous_read: bool = True
    max_length: int = 500
    rate_count: int = 5
    rate_window: float = 10.0
    history_size: int = 50


@dataclass(slots=True)
class Identity:
    id: str
    name: str | None
    role: str

    @property
    def moderator(self) -> bool:
        return self.role in MODERATOR_ROLES

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role}


@dataclass(slots=True)
class Room:
    name: str
    moderation: RoomModeration
    members: set[WebSocket] = field(default_factory=set)
    history: collections.deque[dict[str, Any]] | None = None
    remote_viewers: dict[str, tuple[int, float]] = field(default_factory=dict)  # node -> (count, seen)
    last_viewers_sent: int = -1
    sanctions_loaded: bool = False
    # moderation events delivered while the stored sanctions are being read: replayed on top of them
    moderation_journal: list[tuple[str, str, float | None]] | None = None


class RealtimeHub:
    def __init__(self, config: HubConfig, fanout: Fanout, history: ChatHistory | None, secret: str,
                 sanctions: SanctionStore | None = None) -> None:
        self.config = config
        self.fanout = fanout
        self.history = history
        self.sanctions = sanctions
        self.secret = secret
        self.node_id = uuid.uuid4().hex[:12]
        self.rooms: dict[str, Room] = {}
        self._history_locks: dict[str, asyncio.Lock] = {}
        self._sanction_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.delivered = 0

    # ---- lifecycle ----
    async def start(self) -> None:
        await self.fanout.start(self._deliver)
        self._spawn(self._presence_loop(), "realtime-presence")

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        await self.fanout.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, RoomModeration(self.config.rate_count, self.config.rate_window))
        return room

    def viewers(self, name: str) -> int:
        room = self.rooms.get(name)
        if room is None:
            return 0
        now = time.time()
        remote = sum(c for node, (c, seen) in room.remote_viewers.items()
                     if node != self.node_id and now - seen < PRESENCE_EXPIRY)
        return len(room.members) + remote

    # ---- publishing (through the fan-out, so every node sees the same order) ----
    async def publish(self, room: str, kind: str, payload: dict[str, Any]) -> None:
        await self.fanout.publish(room, {"t": kind, "n": self.node_id, "p": payload})

    def publish_soon(self, room: str, kind: str, payload: dict[str, Any]) -> None:
        self._spawn(self.publish(room, kind, payload), "realtime-publish")

    async def relay_event(self, topic: str, data: dict[str, Any]) -> None:
        """A node bus event for clients: to its stream's room (if it names one) and to the events room."""
        payload = {"type": "event", "topic": topic, "data": data}
        stream = data.get("name") or data.get("stream")
        if isinstance(stream, str) and ROOM_NAME.match(stream):
            await self.publish(stream, "event", payload)
        await self.publish(EVENTS_ROOM, "event", payload)

    # ---- applying fan-out events ----
    def _deliver(self, room_name: str, event: dict[str, Any]) -> None:
        kind, payload = event.get("t"), event.get("p")
        if not isinstance(payload, dict) or not ROOM_NAME.match(room_name):
            return
        self.delivered += 1
        if kind == "presence":
            node, count = event.get("n"), payload.get("viewers")
            if isinstance(node, str) and isinstance(count, int) and node != self.node_id:
                proom = self.room(room_name)
                proom.remote_viewers[node] = (count, time.time())
                self._send_viewers(proom)
            return
        room: Room | None = self.rooms.get(room_name)
        if kind in ("chat", "danmaku"):
            room = room or self.room(room_name)
            if room.history is not None and self.config.history_size:
                room.history.append(payload)
        elif kind == "deleted" and room is not None and room.history is not None:
            mid = payload.get("id")
            for i, m in enumerate(room.history):
                if m.get("id") == mid:
                    del room.history[i]
                    break
        elif kind == "moderation":
            room = room or self.room(room_name)
            action, user = payload.get("action"), payload.get("user")
            if isinstance(action, str) and isinstance(user, str):
                until = payload.get("until")
                until_f = float(until) if isinstance(until, (int, float)) else None
                room.moderation.apply(action, user, until_f)
                if room.moderation_journal is not None:
                    room.moderation_journal.append((action, user, until_f))
                if action == "ban":
                    for ws in list(room.members):
                        ident = ws.state.get("identity")
                        if ident is not None and ident.id == user:
                            self._spawn(ws.close(4003, "banned"), "realtime-ban")
        if room is not None and room.members:
            broadcast(room.members, schema.dumps(payload))

    def _send_viewers(self, room: Room) -> None:
        n = self.viewers(room.name)
        if n != room.last_viewers_sent and room.members:
            room.last_viewers_sent = n
            broadcast(room.members, schema.dumps({"type": "presence", "room": room.name, "viewers": n}))

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_REFRESH)
            for room in list(self.rooms.values()):
                if room.members or room.last_viewers_sent > 0:
                    await self.publish(room.name, "presence", {"viewers": len(room.members)})
                now = time.time()
                for node, (_, seen) in list(room.remote_viewers.items()):
                    if now - seen > PRESENCE_EXPIRY:
                        del room.remote_viewers[node]
                self._send_viewers(room)

    async def _load_history(self, room: Room) -> None:
        if room.history is not None:
            return
        lock = self._history_locks.setdefault(room.name, asyncio.Lock())
        async with lock:
            if self._loaded(room):
                return
            items: list[dict[str, Any]] = []
            if self.history is not None and self.config.history_size:
                try:
                    items = await self.history.recent(room.name, self.config.history_size)
                except Exception:
                    log.exception("realtime: loading history of %s failed", room.name)
            room.history = collections.deque(items, maxlen=max(1, self.config.history_size))

    @staticmethod
    def _loaded(room: Room) -> bool:
        return room.history is not None

    @staticmethod
    def _sanctions_loaded(room: Room) -> bool:
        return room.sanctions_loaded

    async def _load_sanctions(self, room: Room) -> None:
        """Mutes and bans stored in the database, once per room and node, before anyone joins."""
        if room.sanctions_loaded or self.sanctions is None:
            return
        lock = self._sanction_locks.setdefault(room.name, asyncio.Lock())
        async with lock:
            if self._sanctions_loaded(room):  # another member's join read them while we waited
                return
            room.moderation_journal = []
            try:
                rows = await self.sanctions.active(room.name, time.time())
            except Exception:
                log.exception("realtime: loading mutes and bans of %s failed", room.name)
                rows = None
            journal, room.moderation_journal = room.moderation_journal, None
            if rows is not None:
                # the database has every action taken before the read; what arrived during it goes on top
                loaded = RoomModeration(self.config.rate_count, self.config.rate_window)
                for action, user, until in [*rows, *journal]:
                    loaded.apply(action, user, until)
                room.moderation.muted_until = loaded.muted_until
                room.moderation.banned = loaded.banned
            room.sanctions_loaded = True

    # ---- connections ----
    def authenticate(self, token: str) -> Identity:
        claims: AccessClaims = decode_access_token(token, secret=self.secret)
        return Identity(claims.subject, claims.name, claims.role)

    async def _identify(self, ws: WebSocket, *, required: bool) -> Identity | None:
        token = ws.query.get("token")
        if token:
            try:
                return self.authenticate(token)
            except InvalidToken:
                await ws.close(4001, "invalid token")
                return None
        if not required:
            return None
        # no token in the URL: the first message must be {"type": "auth", "token": ...}
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                raw = await ws.recv()
            msg = schema.parse_client_message(raw, max_length=self.config.max_length)
            if not isinstance(msg, schema.Auth):
                raise schema.BadMessage("unauthorized", "authenticate first")
            return self.authenticate(msg.token)
        except (TimeoutError, schema.BadMessage, InvalidToken):
            await ws.close(4001, "authentication required")
            return None

    async def serve_room(self, ws: WebSocket, room_name: str) -> None:
        if not ROOM_NAME.match(room_name) or room_name.startswith("_"):
            await ws.close(4004, "no such room")
            return
        identity = await self._identify(ws, required=not self.config.anonymous_read)
        if ws.closed or not ws.open:
            return
        room = self.room(room_name)
        await self._load_sanctions(room)
        if identity is not None and identity.id in room.moderation.banned:
            await ws.close(4003, "banned")
            return
        ws.state["identity"] = identity
        await self._load_history(room)
        room.members.add(ws)
        try:
            self._welcome(ws, room, identity)
            await self.publish(room.name, "presence", {"viewers": len(room.members)})
            self._send_viewers(room)
            async for raw in ws:
                try:
                    msg = schema.parse_client_message(raw, max_length=self.config.max_length)
                    identity = await self._handle(ws, room, identity, msg)
                except schema.BadMessage as exc:
                    ws.send_nowait(schema.error(exc.code, str(exc)))
        finally:
            room.members.discard(ws)
            self.publish_soon(room.name, "presence", {"viewers": len(room.members)})
            self._send_viewers(room)

    def _welcome(self, ws: WebSocket, room: Room, identity: Identity | None) -> None:
        ws.send_nowait(schema.dumps({
            "type": "welcome", "room": room.name, "node": self.node_id,
            "user": identity.public() if identity else None, "can_send": identity is not None,
            "moderator": bool(identity and identity.moderator), "viewers": self.viewers(room.name),
            "max_length": self.config.max_length,
        }))
        ws.send_nowait(schema.dumps({"type": "history", "room": room.name, "messages": list(room.history or ())}))

    async def _handle(self, ws: WebSocket, room: Room, identity: Identity | None,
                      msg: schema.ClientMessage) -> Identity | None:
        if isinstance(msg, schema.ClientPing):
            ws.send_nowait(schema.dumps({"type": "pong", "ts": time.time()}))
            return identity
        if isinstance(msg, schema.Auth):
            try:
                identity = self.authenticate(msg.token)
            except InvalidToken:
                raise schema.BadMessage("unauthorized", "invalid token") from None
            if identity.id in room.moderation.banned:
                await ws.close(4003, "banned")
                return identity
            ws.state["identity"] = identity
            self._welcome(ws, room, identity)
            return identity
        if identity is None:
            raise schema.BadMessage("unauthorized", "anonymous viewers can read but not send")
        if isinstance(msg, (schema.Chat, schema.Danmaku)):
            now = time.time()
            if identity.id in room.moderation.banned:
                raise schema.BadMessage("banned", "you are banned from this room")
            if room.moderation.is_muted(identity.id, now):
                raise schema.BadMessage("muted", "you are muted in this room")
            if not room.moderation.allow_message(identity.id, time.monotonic()):
                raise schema.BadMessage("rate_limited", "too many messages; slow down")
            payload: dict[str, Any] = {"type": "chat", "id": uuid.uuid4().hex, "room": room.name,
                                       "user": {"id": identity.id, "name": identity.name}, "text": msg.text,
                                       "ts": now}
            if isinstance(msg, schema.Danmaku):
                payload.update(type="danmaku", media_time=msg.media_time, color=msg.color, mode=msg.mode)
            if self.history is not None:
                try:
                    await self.history.append(payload)
                except Exception:
                    log.exception("realtime: storing a chat message failed")
            await self.publish(room.name, payload["type"], payload)
            return identity
        if isinstance(msg, schema.Delete):
            own = any(m.get("id") == msg.id and (m.get("user") or {}).get("id") == identity.id
                      for m in room.history or ())
            if not (identity.moderator or own):
                raise schema.BadMessage("forbidden", "only moderators and authors delete messages")
            if self.history is not None:
                try:
                    await self.history.delete(msg.id)
                except Exception:
                    log.exception("realtime: deleting a chat message failed")
            await self.publish(room.name, "deleted", {"type": "deleted", "room": room.name, "id": msg.id,
                                                      "by": identity.id})
            return identity
        # what is left is a moderation action (mute, unmute, ban, unban)
        if not identity.moderator:
            raise schema.BadMessage("forbidden", "moderators only")
        until = time.time() + msg.seconds if msg.seconds is not None else None
        payload = {"type": "moderation", "room": room.name, "action": msg.action, "user": msg.user,
                   "by": identity.id}
        if until is not None and msg.action == "mute":
            payload["until"] = until
        if self.sanctions is not None:
            try:
                await self.sanctions.record(room.name, msg.action, msg.user,
                                            until if msg.action == "mute" else None, identity.id)
            except Exception:
                log.exception("realtime: storing a %s failed", msg.action)
        await self.publish(room.name, "moderation", payload)
        return identity

    async def serve_events(self, ws: WebSocket) -> None:
        """Server-pushed events for dashboards (stream state, QoS, packaging, edge health): moderators only."""
        identity = await self._identify(ws, required=True)
        if identity is None or not ws.open:
            return
        if not identity.moderator:
            await ws.close(4003, "moderators only")
            return
        room = self.room(EVENTS_ROOM)
        room.members.add(ws)
        try:
            ws.send_nowait(schema.dumps({"type": "welcome", "room": EVENTS_ROOM, "user": identity.public()}))
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    if isinstance(raw, str) and '"ping"' in raw:
                        ws.send_nowait(schema.dumps({"type": "pong", "ts": time.time()}))
        finally:
            room.members.discard(ws)
