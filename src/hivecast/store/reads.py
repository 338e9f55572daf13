"""Read-only queries with the fewest round trips: on PostgreSQL no BEGIN/ROLLBACK around a lone
SELECT (SQLite readers are in `Store.read_rows`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# One SELECT is consistent by itself: in autocommit PostgreSQL runs it without an explicit
# transaction, which saves two of the three round trips. SQLite (aiosqlite) would pay a thread
# hop to switch modes and starts no transaction for a SELECT anyway.
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


async def read_connection(session: AsyncSession) -> AsyncConnection:
    """The session's connection for reads; in autocommit when the session has not begun yet."""
    bind = session.bind
    if session.in_transaction() or bind is None or bind.dialect.name != "postgresql":
        return await session.connection()
    return await session.connection(execution_options=_AUTOCOMMIT)
