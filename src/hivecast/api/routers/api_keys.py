"""/api-keys: machine credentials of the calling user (admins see all). The secret is shown once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlalchemy import delete, select, update
from starlette.responses import Response

from hivecast.api.errors import ApiError, not_found
from hivecast.api.responses import check_if_match, no_content, paginate, parse_sort, respond
from hivecast.api.routers.common import Db, IdPath, Page, Size, errors, sort_param
from hivecast.api.schemas import ApiKeyCreate, ApiKeyOut, ApiKeyWithSecret, Envelope, ListEnvelope
from hivecast.api.security import Auth, ctx_of, new_api_key
from hivecast.store.models import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
_SORT = {"created_at": ApiKey.created_at, "name": ApiKey.name}
Sort = sort_param("created_at", "name")


def out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(dict(id=key.id, user_id=key.user_id, name=key.name, prefix=key.prefix,
                     scopes=list(key.scopes), revoked=key.revoked_at is not None,
                     expires_at=key.expires_at, last_used_at=key.last_used_at, created_at=key.created_at))


@router.get("", response_model=ListEnvelope[ApiKeyOut], responses=errors(304), summary="List API keys")
async def list_keys(principal: Auth, request: Request, session: Db, page: Page = 1, size: Size = 20,
                    sort: str | None = Sort) -> Response:
    stmt = select(ApiKey)
    if not principal.is_admin:
        stmt = stmt.where(ApiKey.user_id == principal.user_id)
    rows, pagination = await paginate(session, stmt, page, size, parse_sort(sort, _SORT, "-created_at"), ApiKey.id)
    return respond(request, [out(k) for k in rows], pagination=pagination)


@router.post("", status_code=201, response_model=Envelope[ApiKeyWithSecret], responses=errors(),
             summary="Create an API key (the key is in this response only)")
async def create_key(body: ApiKeyCreate, principal: Auth, request: Request, session: Db) -> Response:
    if principal.via == "api_key" and "write" not in principal.scopes:
        raise ApiError(403, "this API key is read-only", code="INSUFFICIENT_SCOPE")
    plain, prefix, digest = new_api_key()
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    key = ApiKey(user_id=principal.user_id, name=body.name, prefix=prefix, key_hash=digest,
                 scopes=sorted(set(body.scopes)), expires_at=expires)
    session.add(key)
    await session.commit()
    data = ApiKeyWithSecret(**out(key).model_dump(), key=plain)
    return respond(request, data, status=201, message="store this key now: it is not shown again",
                   headers={"location": f"/api/v1/api-keys/{key.id}"})


async def _load(session: Db, principal: Auth, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or not principal.owns(key.user_id):
        raise not_found("API key")
    return key


@router.get("/{key_id}", response_model=Envelope[ApiKeyOut], responses=errors(304, 404), summary="Get an API key")
async def get_key(key_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    return respond(request, out(await _load(session, principal, key_id)))


@router.post("/{key_id}/revoke", response_model=Envelope[ApiKeyOut], responses=errors(404, 412),
             summary="Revoke an API key (kept, listed as revoked)")
async def revoke_key(key_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    key = await _load(session, principal, key_id)
    check_if_match(request, out(key))
    if key.revoked_at is None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(
            revoked_at=datetime.now(UTC), version=ApiKey.version + 1))
        await session.commit()
        ctx_of(request).forget_credentials()
        await session.refresh(key)
    return respond(request, out(key), message="revoked")


@router.delete("/{key_id}", status_code=204, responses=errors(404, 412), summary="Delete (and so revoke) an API key")
async def delete_key(key_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    key = await session.get(ApiKey, key_id)
    if key is None:
        return no_content()
    if not principal.owns(key.user_id):
        raise not_found("API key")
    check_if_match(request, out(key))
    await session.execute(delete(ApiKey).where(ApiKey.id == key_id))
    await session.commit()
    ctx_of(request).forget_credentials()
    return no_content()
