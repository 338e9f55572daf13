"""Persistence: SQLAlchemy 2 (async) models, the engine and session factory, Alembic migrations."""

from hivecast.store.database import Store, open_store
from hivecast.store.models import ApiKey, Base, Comment, Purge, RefreshToken, Stream, User, Video

__all__ = ["ApiKey", "Base", "Comment", "Purge", "RefreshToken", "Store", "Stream", "User", "Video", "open_store"]
