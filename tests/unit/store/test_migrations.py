"""The shipped Alembic migrations build exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from hivecast.store import Base, open_store


async def test_migrations_create_every_model_table(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            for table in Base.metadata.tables.values():
                cols = await conn.run_sync(lambda c, t=table.name: {col["name"] for col in inspect(c).get_columns(t)})
                assert cols == {c.name for c in table.columns}, table.name
        assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    finally:
        await store.close()
    again = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")  # idempotent at restart
    await again.close()
