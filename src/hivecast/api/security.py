"""Who is calling: a bearer access token (JWT) or an `X-API-Key`, resolved to a `Principal`;
refresh tokens and API key secrets; per-resource authorization rules."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hivecast.api.context import ApiContext
from hivecast.api.errors import ApiError
from hivecast.auth.tokens import InvalidToken, decode_access_token
from hivecast.store import Store
from hivecast.store.models import ApiKey, User

KEY_PREFIX = "hck_"
_bearer = HTTPBearer(auto_error=False, description="access token from POST /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key from POST /api/v1/api-keys")

UNAUTHENTICATED = {"www-authenticate": 'Bearer realm="hivecast"'}


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_api_key() -> tuple[str, str, str]:
    """(plain key, lookup prefix, hash). The prefix is public (shown in listings), the rest is not."""
    prefix = secrets.token_hex(6)
    plain = f"{KEY_PREFIX}{prefix}_{new_secret()}"
    return plain, prefix, sha256_hex(plain)


def parse_api_key(plain: str) -> str | None:
    if not plain.startswith(KEY_PREFIX) or len(plain) > 200:
        return None
    prefix, _, rest = plain[len(KEY_PREFIX):].partition("_")
    if len(prefix) != 12 or not rest:
        return None
    return prefix


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    username: str
    role: str
    via: str  # token | api_key
    scopes: tuple[str, ...]
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def owns(self, owner_id: str) -> bool:
        return self.is_admin or owner_id == self.user_id


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def store_of(request: Request) -> Store:
    store = ctx_of(request).store
    if store is None:
        raise ApiError(503, "the store is not available")
    return store


async def db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one database session (shared by authentication and the handler)."""
    async with store_of(request).session() as session:
        yield session


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
    session: Annotated[AsyncSession, Depends(db)],
) -> Principal:
    ctx = ctx_of(request)
    if api_key:
        principal = await _from_api_key(ctx, session, api_key)
    elif bearer is not None and bearer.credentials:
        principal = await _from_token(ctx, session, bearer.credentials)
    else:
        raise ApiError(401, "authentication required", headers=UNAUTHENTICATED)
    if "write" not in principal.scopes and request.method not in ("GET", "HEAD", "OPTIONS"):
        raise ApiError(403, "this API key is read-only", code="INSUFFICIENT_SCOPE")
    request.state.principal = principal
    return principal


async def _from_token(ctx: ApiContext, session: AsyncSession, token: str) -> Principal:
    try:
        claims = decode_access_token(token, secret=ctx.secret)
    except InvalidToken:
        raise ApiError(401, "invalid or expired access token", code="INVALID_TOKEN", headers=UNAUTHENTICATED) from None
    if claims.token_id in ctx.revoked_access:
        raise ApiError(401, "access token revoked", code="INVALID_TOKEN", headers=UNAUTHENTICATED)
    now = time.monotonic()
    cached = ctx.cached_principal("user:" + claims.subject, now)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    user = await session.get(User, claims.subject)
    # The user is re-read (or taken from the short cache, cleared on every change) so deleting,
    # disabling or demoting a user takes effect without waiting for their tokens to expire.
    if user is None or user.disabled:
        raise ApiError(401, "account not active", code="INVALID_TOKEN", headers=UNAUTHENTICATED)
    principal = Principal(user.id, user.username, user.role, "token", ("read", "write"))
    ctx.cache_principal("user:" + claims.subject, principal, now)
    return principal


async def _from_api_key(ctx: ApiContext, session: AsyncSession, plain: str) -> Principal:
    prefix = parse_api_key(plain)
    bad = ApiError(401, "invalid or revoked API key", code="INVALID_API_KEY", headers=UNAUTHENTICATED)
    if prefix is None:
        raise bad
    digest = sha256_hex(plain)
    now = time.monotonic()
    cached = ctx.cached_principal("key:" + digest, now)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    row = (await session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
    )).first()
    if row is None:
        raise bad
    key, user = row
    if not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        raise bad
    expires = utc(key.expires_at)
    if expires is not None and expires <= datetime.now(UTC):
        raise bad
    if user.disabled:
        raise bad
    # last_used_at is advisory: written at most once a minute per key to keep reads cheap.
    last = utc(key.last_used_at)
    wall = datetime.now(UTC)
    if last is None or (wall - last).total_seconds() > 60:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=wall))
        await session.commit()
    principal = Principal(user.id, user.username, user.role, "api_key", tuple(key.scopes), key.id)
    ctx.cache_principal("key:" + digest, principal, now, expires.timestamp() if expires else None)
    return principal


async def authenticate_if_present(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
    session: Annotated[AsyncSession, Depends(db)],
) -> Principal | None:
    """None for a request without credentials; credentials that are there must be valid (401)."""
    if not api_key and "authorization" not in request.headers:
        return None
    return await authenticate(request, bearer, api_key, session)


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise ApiError(403, f"requires role {' or '.join(roles)}")


Auth = Annotated[Principal, Depends(authenticate)]
MaybeAuth = Annotated[Principal | None, Depends(authenticate_if_present)]
# An operation open to visitors too: OpenAPI's empty requirement means "no credentials needed".
ANONYMOUS_OK: dict[str, Any] = {"security": [{}]}

