"""Alembic environment: migrations run on the connection the node hands over (sync side of the
async engine), so one code path serves SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context

from hivecast.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("hivecast migrations run from the node (hivecast.store.open_store)")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
