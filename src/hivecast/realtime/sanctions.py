"""Mutes and bans in the database (table `realtime_sanctions`, created by the store's migrations).

Written by the node where a moderator acted, before the action goes out on the fan-out (as chat
history is), and read when a room opens on a node: a restarted node, or any node sharing the
database, knows who is muted or banned before the first member is let in.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hivecast.store.models import RoomSanction

_table = cast(sa.Table, RoomSanction.__table__)
# the action that sets a sanction -> its kind; the lifting actions remove the row of that kind
SETS = {"mute": "mute", "ban": "ban"}
LIFTS = {"unmute": "mute", "unban": "ban"}


class SanctionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, room: str, action: str, user: str, until: float | None, by: str) -> None:
        """Apply one moderation action: mute and ban replace the user's row of that kind, unmute and
        unban delete it (delete + insert in one transaction: the same on SQLite and PostgreSQL)."""
        kind = SETS.get(action) or LIFTS.get(action)
        if kind is None:
            raise ValueError(f"unknown moderation action {action!r}")
        key = (_table.c.room == room) & (_table.c.user_id == user) & (_table.c.kind == kind)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(_table).where(key))
            if action in SETS:
                await conn.execute(sa.insert(_table).values(room=room, user_id=user, kind=kind,
                                                            until=until if kind == "mute" else None, by=by))

    async def active(self, room: str, now: float) -> list[tuple[str, str, float | None]]:
        """(action, user, until) for every sanction of `room` still in force; expired mutes are deleted."""
        expired = (_table.c.room == room) & (_table.c.kind == "mute") & (_table.c.until <= now)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(_table).where(expired))
            rows = (await conn.execute(sa.select(_table.c.kind, _table.c.user_id, _table.c.until)
                                       .where(_table.c.room == room))).all()
        return [(kind, user, until) for kind, user, until in rows]
