"""Stored mutes and bans on a real SQLite database migrated by the store's Alembic revisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivecast.realtime.sanctions import SanctionStore
from hivecast.store import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    await s.close()


async def test_mute_ban_and_their_lifting(store: Store) -> None:
    sanctions = SanctionStore(store.engine)
    await sanctions.record("room", "mute", "troll", None, "mia")
    await sanctions.record("room", "ban", "troll", None, "mia")
    await sanctions.record("room", "mute", "loud", 2000.0, "mia")
    await sanctions.record("other", "ban", "loud", None, "mia")
    assert sorted(await sanctions.active("room", 1000.0)) == [("ban", "troll", None), ("mute", "loud", 2000.0),
                                                               ("mute", "troll", None)]
    await sanctions.record("room", "mute", "loud", 3000.0, "mia")  # a new mute replaces the old one
    await sanctions.record("room", "unmute", "troll", None, "mia")
    await sanctions.record("room", "unban", "nobody", None, "mia")  # lifting nothing is harmless
    assert sorted(await sanctions.active("room", 1000.0)) == [("ban", "troll", None), ("mute", "loud", 3000.0)]
    await sanctions.record("room", "unban", "troll", None, "mia")
    assert await sanctions.active("room", 1000.0) == [("mute", "loud", 3000.0)]
    assert await sanctions.active("other", 1000.0) == [("ban", "loud", None)]


async def test_expired_mutes_are_dropped(store: Store) -> None:
    sanctions = SanctionStore(store.engine)
    await sanctions.record("room", "mute", "brief", 1500.0, "mia")
    assert await sanctions.active("room", 1000.0) == [("mute", "brief", 1500.0)]
    assert await sanctions.active("room", 1500.0) == []
    assert await sanctions.active("room", 1000.0) == []  # deleted, not only hidden


async def test_unknown_action_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown moderation action"):
        await SanctionStore(store.engine).record("room", "shout", "u", None, "mia")
