"""Chat history in the database (SQLAlchemy Core, async): our own table, created at start if missing.

The REST API engineer owns migrations for the rest of the schema; this table is folded in later.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = sa.MetaData()

chat_messages = sa.Table(
    "realtime_chat_messages",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("room", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # chat | danmaku
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("user_name", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("media_time", sa.Float, nullable=True),
    sa.Column("extra", sa.JSON, nullable=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_realtime_chat_room_seq", "room", "seq"),
)


class ChatHistory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def append(self, message: dict[str, Any]) -> None:
        user = message.get("user") or {}
        extra = {k: message[k] for k in ("color", "mode") if k in message}
        async with self.engine.begin() as conn:
            await conn.execute(chat_messages.insert().values(
                id=message["id"], room=message["room"], kind=message["type"], user_id=user.get("id", ""),
                user_name=user.get("name"), text=message["text"], media_time=message.get("media_time"),
                extra=extra or None, ts=message["ts"], deleted=False))

    async def delete(self, message_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(chat_messages.update().where(chat_messages.c.id == message_id)
                                        .values(deleted=True))
            return bool(result.rowcount)

    async def recent(self, room: str, limit: int) -> list[dict[str, Any]]:
        """The last `limit` visible messages of a room, oldest first, in the shape clients receive."""
        q = (sa.select(chat_messages).where(chat_messages.c.room == room, chat_messages.c.deleted.is_(False))
             .order_by(chat_messages.c.seq.desc()).limit(limit))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        out = []
        for r in reversed(rows):
            msg: dict[str, Any] = {"type": r["kind"], "id": r["id"], "room": r["room"],
                                   "user": {"id": r["user_id"], "name": r["user_name"]}, "text": r["text"],
                                   "ts": r["ts"]}
            if r["media_time"] is not None:
                msg["media_time"] = r["media_time"]
            if r["extra"]:
                msg.update(r["extra"])
            out.append(msg)
        return out
