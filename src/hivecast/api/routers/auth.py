"""POST /auth/login, /auth/refresh, /auth/logout; GET /auth/me."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlalchemy import select, update
from starlette.responses import Response

from hivecast.api.errors import ApiError
from hivecast.api.passwords import verify_password
from hivecast.api.responses import no_content, respond
from hivecast.api.routers.common import Db, errors
from hivecast.api.schemas import Envelope, LoginIn, LogoutIn, Me, RefreshIn, TokenPair
from hivecast.api.security import Auth, ctx_of, new_secret, sha256_hex, utc
from hivecast.auth.tokens import InvalidToken, decode_access_token, issue_access_token
from hivecast.store.models import RefreshToken, User, new_id

router = APIRouter(prefix="/auth", tags=["auth"])
_BAD_REFRESH = "invalid, expired or revoked refresh token"


async def _issue(request: Request, session: Db, user: User, family: str) -> TokenPair:
    ctx = ctx_of(request)
    auth = ctx.settings.auth
    secret = new_secret()
    row = RefreshToken(id=new_id(), family_id=family, user_id=user.id, token_hash=sha256_hex(secret),
                       expires_at=datetime.now(UTC) + timedelta(seconds=auth.refresh_token_ttl))
    session.add(row)
    await session.commit()
    access = issue_access_token(secret=ctx.secret, subject=user.id, role=user.role,
                                ttl=auth.access_token_ttl, name=user.username)
    return TokenPair(access_token=access, refresh_token=f"{row.id}.{secret}",
                     expires_in=int(auth.access_token_ttl))


@router.post("/login", response_model=Envelope[TokenPair], responses=errors(), summary="Log in")
async def login(body: LoginIn, request: Request, session: Db) -> Response:
    user = (await session.execute(select(User).where(User.username == body.username))).scalar_one_or_none()
    ok = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not ok or user.disabled:
        raise ApiError(401, "wrong username or password", code="INVALID_CREDENTIALS")
    pair = await _issue(request, session, user, new_id())
    return respond(request, pair)


def _split(token: str) -> tuple[str, str]:
    token_id, _, secret = token.partition(".")
    if len(token_id) != 32 or not secret:
        raise ApiError(401, _BAD_REFRESH, code="INVALID_TOKEN")
    return token_id, secret


@router.post("/refresh", response_model=Envelope[TokenPair], responses=errors(), summary="Rotate a refresh token")
async def refresh(body: RefreshIn, request: Request, session: Db) -> Response:
    token_id, secret = _split(body.refresh_token)
    row = await session.get(RefreshToken, token_id)
    if row is None or sha256_hex(secret) != row.token_hash or row.revoked:
        raise ApiError(401, _BAD_REFRESH, code="INVALID_TOKEN")
    if row.used_at is not None:
        # A rotated token came back: someone holds a copy. End the whole login.
        await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id)
                              .values(revoked=True))
        await session.commit()
        raise ApiError(401, "refresh token reused; this login has been revoked", code="TOKEN_REUSED")
    expires = utc(row.expires_at)
    assert expires is not None
    if expires <= datetime.now(UTC):
        raise ApiError(401, _BAD_REFRESH, code="INVALID_TOKEN")
    # Guarded so two concurrent refreshes with the same token cannot both succeed.
    claimed = await session.execute(update(RefreshToken).where(
        RefreshToken.id == row.id, RefreshToken.used_at.is_(None)).values(used_at=datetime.now(UTC)))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise ApiError(401, "refresh token reused; this login has been revoked", code="TOKEN_REUSED")
    user = await session.get(User, row.user_id)
    if user is None or user.disabled:
        await session.commit()
        raise ApiError(401, _BAD_REFRESH, code="INVALID_TOKEN")
    pair = await _issue(request, session, user, row.family_id)
    return respond(request, pair)


@router.post("/logout", status_code=204, responses=errors(), summary="Log out (revoke the refresh token family)")
async def logout(body: LogoutIn, request: Request, session: Db) -> Response:
    token_id, secret = _split(body.refresh_token)
    row = await session.get(RefreshToken, token_id)
    if row is not None and sha256_hex(secret) == row.token_hash:
        await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id)
                              .values(revoked=True))
        await session.commit()
    ctx = ctx_of(request)
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        try:
            claims = decode_access_token(auth[7:].strip(), secret=ctx.secret)
        except InvalidToken:
            pass
        else:
            ctx.revoke_access(claims.token_id, float(claims.expires_at) + 10)
    return no_content()


@router.get("/me", response_model=Envelope[Me], responses=errors(304), summary="Who am I")
async def me(principal: Auth, request: Request) -> Response:
    return respond(request, Me(id=principal.user_id, username=principal.username, role=principal.role,
                               via=principal.via, scopes=list(principal.scopes)))
