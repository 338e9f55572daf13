"""/streams: live channels. Stream keys are stored hashed and shown only when created or rotated."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from hivecast.api.errors import ApiError, not_found
from hivecast.api.responses import (
    RowPage,
    check_if_match,
    empty_page,
    json_time,
    no_content,
    paginate_rows,
    parse_sort,
    respond,
    row_page,
)
from hivecast.api.routers.common import Db, IdPath, Page, Size, errors, sort_param
from hivecast.api.schemas import (
    Envelope,
    ListEnvelope,
    StreamCreate,
    StreamKeyOut,
    StreamOut,
    StreamPatch,
    StreamPublic,
    StreamPut,
    StreamWithKey,
)
from hivecast.api.security import (
    ANONYMOUS_OK,
    UNAUTHENTICATED,
    Auth,
    MaybeAuth,
    Principal,
    ctx_of,
    require_role,
    sha256_hex,
    store_of,
)
from hivecast.api.services import live_info
from hivecast.store.models import Stream, User

router = APIRouter(prefix="/streams", tags=["streams"])
_SORT = {"name": Stream.name, "created_at": Stream.created_at, "title": Stream.title}
Sort = sort_param("name", "created_at", "title")


def new_stream_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


def _host(request: Request) -> str:
    # The Host header names how the client reached us; only a plain hostname or address is used.
    host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
    ok = host and len(host) <= 253 and all(c.isalnum() or c in ".-:" for c in host)
    return host if ok else "127.0.0.1"


# Every column a representation needs (never the key hash): lists read these as Core rows.
_COLUMNS = (Stream.id, Stream.name, Stream.title, Stream.description, Stream.owner_id, Stream.key_rotated_at,
            Stream.created_at, Stream.updated_at)


@dataclass(frozen=True, slots=True)
class Where:
    """How this node is reached for ingest, resolved once per request."""

    host: str
    rtsp_port: int
    rtmp_port: int | None
    rtmp_app: str


def _where(request: Request) -> Where:
    ctx = ctx_of(request)
    rtmp_port = ctx.service("rtmp_port") if ctx.settings.rtmp.enabled else None
    return Where(_host(request), ctx.service("rtsp_port") or ctx.settings.rtsp_port,
                  rtmp_port if isinstance(rtmp_port, int) else None, ctx.settings.rtmp.app)


def out(request: Request, stream: Any) -> dict[str, Any]:
    live = live_info(ctx_of(request).service("live_registry"), stream.name)
    return stream_json(stream, live, _where(request))


def _playback(name: str) -> dict[str, str]:
    return {"hls": f"/live/{name}/index.m3u8", "dash": f"/live/{name}/manifest.mpd"}


def stream_json(stream: Any, live: dict[str, Any], where: Where) -> dict[str, Any]:
    """StreamOut's JSON for an ORM stream or a row of _COLUMNS, built directly: validating a
    pydantic model per item only to dump it again was most of a list's cost. A unit test holds
    this to the StreamOut schema."""
    name = stream.name
    return {
        "id": stream.id, "name": name, "title": stream.title, "description": stream.description,
        "owner_id": stream.owner_id, "state": live["state"], "viewers": live["viewers"], "qos": live["qos"],
        "tracks": live["tracks"],
        "ingest_urls": {
            "rtsp": f"rtsp://{where.host}:{where.rtsp_port}/{name}",
            "rtmp": f"rtmp://{where.host}:{where.rtmp_port}/{where.rtmp_app}/{name}" if where.rtmp_port else None,
        },
        "playback_urls": _playback(name),
        "key_rotated_at": json_time(stream.key_rotated_at),
        "created_at": json_time(stream.created_at),
        "updated_at": json_time(stream.updated_at),
    }


async def _load(session: Db, principal: Principal, stream_id: str) -> Stream:
    stream = await session.get(Stream, stream_id)
    if stream is None or not principal.owns(stream.owner_id):
        raise not_found("stream")
    return stream


@router.get("", response_model=ListEnvelope[StreamOut | StreamPublic], responses=errors(304),
            openapi_extra=ANONYMOUS_OK,
            summary="List streams: admins see all, others their own; without credentials, the live ones "
                    "(public fields only)")
async def list_streams(principal: MaybeAuth, request: Request, session: Db, page: Page = 1, size: Size = 20,
                       sort: str | None = Sort,
                       name: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$", description="exact name")] = None,
                       owner_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$",
                                                             description="needs credentials")] = None) -> Response:
    if principal is None:
        return await _list_public(request, session, page, size, sort, name, owner_id)
    viewer = None if principal.is_admin else principal.user_id
    query = _list_query(viewer is not None, owner_id is not None, name is not None, sort)
    rows, pagination = await paginate_rows(store_of(request), session, query, page, size,
                                           {"viewer": viewer, "owner": owner_id, "name": name})
    where, registry = _where(request), ctx_of(request).service("live_registry")
    return respond(request, [stream_json(s, live_info(registry, s.name), where) for s in rows],
                   pagination=pagination)


@functools.lru_cache(maxsize=64)
def _list_query(own: bool, by_owner: bool, by_name: bool, sort: str | None) -> RowPage:
    stmt = select(*_COLUMNS)
    if own:
        stmt = stmt.where(Stream.owner_id == bindparam("viewer"))
    if by_owner:
        stmt = stmt.where(Stream.owner_id == bindparam("owner"))
    if by_name:
        stmt = stmt.where(Stream.name == bindparam("name"))
    return row_page(stmt, parse_sort(sort, _SORT, "created_at"), Stream.id)


_PUBLIC_COLUMNS = (Stream.id, Stream.name, Stream.title, Stream.description, Stream.created_at)
_MAX_LIVE = 10_000  # bound on the IN list a visitor's request can cause


@functools.lru_cache(maxsize=16)
def _public_query(sort: str | None) -> RowPage:
    stmt = select(*_PUBLIC_COLUMNS).where(Stream.name.in_(bindparam("live", expanding=True)))
    return row_page(stmt, parse_sort(sort, _SORT, "created_at"), Stream.id)


async def _list_public(request: Request, session: Db, page: int, size: int, sort: str | None, name: str | None,
                       owner_id: str | None) -> Response:
    """Visitors see the streams live on this node, with what a player needs and nothing else."""
    if owner_id is not None:  # who owns what is not public
        raise ApiError(401, "filtering by owner_id needs credentials", headers=UNAUTHENTICATED)
    query = _public_query(sort)
    registry = ctx_of(request).service("live_registry")
    names = getattr(registry, "names", None)
    live = [n for n in (names() if callable(names) else []) if name is None or n == name][:_MAX_LIVE]
    if not live:
        return respond(request, [], pagination=empty_page(page, size))
    rows, pagination = await paginate_rows(store_of(request), session, query, page, size, {"live": live})
    return respond(request, [public_json(r, live_info(registry, r.name)) for r in rows], pagination=pagination)


def public_json(stream: Any, live: dict[str, Any]) -> dict[str, Any]:
    """StreamPublic's JSON (held to the schema by a unit test, like stream_json)."""
    name = stream.name
    return {
        "id": stream.id, "name": name, "title": stream.title, "description": stream.description,
        "state": live["state"], "viewers": live["viewers"],
        "playback_urls": _playback(name),
        "created_at": json_time(stream.created_at),
    }


@router.post("", status_code=201, response_model=Envelope[StreamWithKey], responses=errors(404, 409),
             summary="Create a stream (admin, streamer)")
async def create_stream(body: StreamCreate, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin", "streamer")
    owner = principal.user_id
    if body.owner_id is not None and body.owner_id != principal.user_id:
        require_role(principal, "admin")
        if await session.get(User, body.owner_id) is None:
            raise ApiError(404, "owner not found", details=[{"field": "owner_id", "message": "no such user"}])
        owner = body.owner_id
    key = new_stream_key()
    stream = Stream(name=body.name, title=body.title, description=body.description, owner_id=owner,
                    key_hash=sha256_hex(key))
    session.add(stream)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ApiError(409, "stream name already taken", details=[{"field": "name", "message": "taken"}]) from None
    data = {**out(request, stream), "stream_key": key}
    return respond(request, data, status=201, message="stream created",
                   headers={"location": f"/api/v1/streams/{stream.id}"})


@router.get("/{stream_id}", response_model=Envelope[StreamOut], responses=errors(304, 404), summary="Get a stream")
async def get_stream(stream_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    return respond(request, out(request, await _load(session, principal, stream_id)))


async def _apply(session: Db, request: Request, stream: Stream, values: dict[str, Any]) -> Response:
    check_if_match(request, out(request, stream))
    values["updated_at"] = datetime.now(UTC)
    values["version"] = stream.version + 1
    result = await session.execute(update(Stream).where(Stream.id == stream.id, Stream.version == stream.version)
                                   .values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise ApiError(412, "the resource changed while it was being updated")
    await session.commit()
    await session.refresh(stream)
    return respond(request, out(request, stream))


@router.put("/{stream_id}", response_model=Envelope[StreamOut], responses=errors(404, 412),
            summary="Replace a stream's mutable fields")
async def put_stream(stream_id: IdPath, body: StreamPut, principal: Auth, request: Request, session: Db) -> Response:
    stream = await _load(session, principal, stream_id)
    return await _apply(session, request, stream, body.model_dump())


@router.patch("/{stream_id}", response_model=Envelope[StreamOut], responses=errors(404, 412),
              summary="Change some fields of a stream (JSON Merge Patch)")
async def patch_stream(stream_id: IdPath, principal: Auth, request: Request, session: Db,
                       body: Annotated[StreamPatch, Body(media_type="application/merge-patch+json")]) -> Response:
    stream = await _load(session, principal, stream_id)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if "title" in changes and changes["title"] is None:
        changes["title"] = ""  # merge-patch null removes the member: the title falls back to empty
    return await _apply(session, request, stream, changes)


@router.delete("/{stream_id}", status_code=204, responses=errors(404, 412), summary="Delete a stream")
async def delete_stream(stream_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    stream = await session.get(Stream, stream_id)
    if stream is None:
        return no_content()
    if not principal.owns(stream.owner_id):
        raise not_found("stream")
    check_if_match(request, out(request, stream))
    await session.execute(delete(Stream).where(Stream.id == stream_id))
    await session.commit()
    return no_content()


@router.post("/{stream_id}/key", response_model=Envelope[StreamKeyOut], responses=errors(404),
             summary="Rotate the stream key (the old key stops working at once)")
async def rotate_key(stream_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    stream = await _load(session, principal, stream_id)
    key = new_stream_key()
    now = datetime.now(UTC)
    await session.execute(update(Stream).where(Stream.id == stream.id).values(
        key_hash=sha256_hex(key), key_rotated_at=now, updated_at=now, version=Stream.version + 1))
    await session.commit()
    return respond(request, StreamKeyOut(stream_key=key, key_rotated_at=now), message="stream key rotated")
