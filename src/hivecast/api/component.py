"""The node component that owns the store: opens the database, runs migrations, creates the
bootstrap admin, and publishes `db`, `store` and `publish_authorizer` in `node.services`."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from hivecast.api.passwords import hash_password
from hivecast.api.security import sha256_hex
from hivecast.store import Store, Stream, User, open_store
from hivecast.store.database import StoreError

if TYPE_CHECKING:
    from hivecast.node import Node

log = logging.getLogger(__name__)


class StreamKeyAuthorizer:
    """`authorize_publish(name, key)` for the RTSP/RTMP ingest: the key must be the stream's current one."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def authorize_publish(self, name: str, key: str | None) -> bool:
        if not key or len(key) > 200 or len(name) > 64:
            return False
        async with self.store.session() as session:
            row = (await session.execute(select(Stream.key_hash).where(Stream.name == name))).scalar_one_or_none()
        return row is not None and hmac.compare_digest(row, sha256_hex(key))


async def ensure_admin(store: Store, username: str, password: str) -> bool:
    """Create the admin if no user of that name exists; True when created."""
    async with store.session() as session:
        if (await session.execute(select(User.id).where(User.username == username))).first() is not None:
            return False
        session.add(User(username=username, password_hash=await hash_password(password), role="admin",
                         disabled=False))
        await session.commit()
        return True


class StoreComponent:
    name = "store"

    def __init__(self) -> None:
        self.store: Store | None = None

    async def start(self, node: Node) -> None:
        from hivecast.node.node import StartupError

        settings = node.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = await open_store(settings.effective_database_url)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        api = settings.api
        if api.admin_username and api.admin_password and \
                await ensure_admin(self.store, api.admin_username, api.admin_password):
            log.info("created bootstrap admin %s", api.admin_username)
        async with self.store.session() as session:
            if (await session.execute(select(User.id).where(User.role == "admin").limit(1))).first() is None:
                log.warning("no admin user yet: create one with `hivecast user create NAME --admin --local "
                            "--data-dir %s` or set [api] admin_username/admin_password", settings.data_dir)
        node.services["store"] = self.store
        node.services["db"] = self.store.engine
        node.services["publish_authorizer"] = StreamKeyAuthorizer(self.store)

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.close()
