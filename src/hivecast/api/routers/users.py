"""/users: admins manage everyone; other roles see and edit only themselves (not their role)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from hivecast.api.errors import ApiError, forbidden, not_found
from hivecast.api.passwords import hash_password
from hivecast.api.responses import check_if_match, no_content, paginate, parse_sort, respond
from hivecast.api.routers.common import Db, IdPath, Page, Size, errors, sort_param
from hivecast.api.schemas import Envelope, ListEnvelope, Role, UserCreate, UserOut, UserPatch, UserPut
from hivecast.api.security import Auth, Principal, ctx_of, require_role
from hivecast.store.models import User

router = APIRouter(prefix="/users", tags=["users"])
_SORT = {"username": User.username, "created_at": User.created_at, "role": User.role}
Sort = sort_param("username", "created_at", "role")


def out(user: User) -> UserOut:
    return UserOut.model_validate(user)


async def _load(session: Db, principal: Principal, user_id: str) -> User:
    if not principal.is_admin and user_id != principal.user_id:
        raise not_found("user")
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return user


@router.get("", response_model=ListEnvelope[UserOut], responses=errors(304), summary="List users (admin)")
async def list_users(principal: Auth, request: Request, session: Db, page: Page = 1, size: Size = 20,
                     sort: str | None = Sort,
                     role: Annotated[Role | None, Query(description="filter by role")] = None,
                     username: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$", description="exact username")] = None,
                     ) -> Response:
    stmt = select(User)
    if not principal.is_admin:
        stmt = stmt.where(User.id == principal.user_id)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if username is not None:
        stmt = stmt.where(User.username == username)
    rows, pagination = await paginate(session, stmt, page, size, parse_sort(sort, _SORT, "created_at"), User.id)
    return respond(request, [out(u) for u in rows], pagination=pagination)


@router.post("", status_code=201, response_model=Envelope[UserOut], responses=errors(409),
             summary="Create a user (admin)")
async def create_user(body: UserCreate, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin")
    user = User(username=body.username, password_hash=await hash_password(body.password), role=body.role,
                display_name=body.display_name, disabled=False)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ApiError(409, "username already taken", details=[{"field": "username", "message": "taken"}]) from None
    return respond(request, out(user), status=201, message="user created",
                   headers={"location": f"/api/v1/users/{user.id}"})


@router.get("/{user_id}", response_model=Envelope[UserOut], responses=errors(304, 404), summary="Get a user")
async def get_user(user_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    return respond(request, out(await _load(session, principal, user_id)))


async def _apply(session: Db, request: Request, principal: Principal, user: User, changes: dict[str, Any]) -> Response:
    check_if_match(request, out(user))
    if not principal.is_admin:
        for field in ("role", "disabled"):
            if field in changes and changes[field] != getattr(user, field):
                raise forbidden(f"only an admin can change {field}")
    if principal.is_admin and user.id == principal.user_id and (
            changes.get("role", "admin") != "admin" or changes.get("disabled", False)):
        raise ApiError(409, "an admin cannot demote or disable themselves")
    values = {k: v for k, v in changes.items() if k != "password"}
    if changes.get("password") is not None:
        values["password_hash"] = await hash_password(changes["password"])
    values["updated_at"] = datetime.now(UTC)
    values["version"] = user.version + 1
    result = await session.execute(update(User).where(User.id == user.id, User.version == user.version)
                                   .values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise ApiError(412, "the resource changed while it was being updated")
    await session.commit()
    ctx_of(request).forget_credentials()
    await session.refresh(user)
    return respond(request, out(user))


@router.put("/{user_id}", response_model=Envelope[UserOut], responses=errors(404, 409, 412),
            summary="Replace a user's mutable fields")
async def put_user(user_id: IdPath, body: UserPut, principal: Auth, request: Request, session: Db) -> Response:
    user = await _load(session, principal, user_id)
    return await _apply(session, request, principal, user, body.model_dump())


@router.patch("/{user_id}", response_model=Envelope[UserOut], responses=errors(404, 409, 412),
              summary="Change some fields of a user (JSON Merge Patch)")
async def patch_user(user_id: IdPath, principal: Auth, request: Request, session: Db,
                     body: Annotated[UserPatch, Body(media_type="application/merge-patch+json")]) -> Response:
    user = await _load(session, principal, user_id)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for field in ("role", "disabled", "password"):
        if field in changes and changes[field] is None:
            raise ApiError(422, "request is not valid", details=[{"field": field, "message": "cannot be null"}])
    return await _apply(session, request, principal, user, changes)


@router.delete("/{user_id}", status_code=204, responses=errors(404, 409, 412), summary="Delete a user (admin)")
async def delete_user(user_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin")
    if user_id == principal.user_id:
        raise ApiError(409, "an admin cannot delete themselves")
    user = await session.get(User, user_id)
    if user is None:
        return no_content()  # idempotent: already gone
    check_if_match(request, out(user))
    await session.execute(delete(User).where(User.id == user_id))
    await session.commit()
    ctx_of(request).forget_credentials()
    return no_content()
