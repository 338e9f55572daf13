"""/videos: on-demand assets, their resumable upload (tus 1.0 core + checksum) and comments."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from sqlalchemy import and_, bindparam, delete, exists, insert, or_, select, update
from starlette.responses import Response

from hivecast.api.errors import ApiError, forbidden, not_found
from hivecast.api.responses import (
    check_if_match,
    json_time,
    no_content,
    paginate,
    parse_sort,
    respond,
)
from hivecast.api.routers.common import CommentId, Db, IdPath, Page, Size, errors, sort_param
from hivecast.api.schemas import (
    CommentCreate,
    CommentOut,
    CursorEnvelope,
    Envelope,
    ListEnvelope,
    PlaybackUrls,
    VideoCreate,
    VideoOut,
    VideoPatch,
    VideoPut,
    VideoState,
)
from hivecast.api.security import Auth, Principal, ctx_of, require_role
from hivecast.api.services import maybe_await
from hivecast.api.uploads import ChunkChecksumMismatch, OffsetMismatch, UploadStore
from hivecast.store.models import Comment, Video

log = logging.getLogger(__name__)
router = APIRouter(prefix="/videos", tags=["videos"])
_SORT = {"title": Video.title, "created_at": Video.created_at, "state": Video.state, "size": Video.size}
Sort = sort_param("title", "created_at", "state", "size")
TUS = {"tus-resumable": "1.0.0"}


def uploads(request: Request) -> UploadStore:
    store: UploadStore = request.app.state.uploads
    return store


def out(video: Video) -> VideoOut:
    ready = video.state == "ready"
    return VideoOut(
        id=video.id, owner_id=video.owner_id, title=video.title, description=video.description,
        filename=video.filename, state=video.state,
        size=video.size, sha256=video.sha256, upload_offset=video.upload_offset,
        upload_url=f"/api/v1/videos/{video.id}/upload", renditions=list(video.renditions or []),
        playback_urls=PlaybackUrls(hls=f"/vod/{video.id}/index.m3u8", dash=f"/vod/{video.id}/manifest.mpd")
        if ready else None,
        torrent_url=video.torrent_url, magnet=video.magnet,
        created_at=video.created_at, updated_at=video.updated_at,
    )


async def _load(session: Db, video_id: str) -> Video:
    video = await session.get(Video, video_id)
    if video is None:
        raise not_found("video")
    return video


async def _load_owned(session: Db, principal: Principal, video_id: str) -> Video:
    video = await _load(session, video_id)
    if not principal.owns(video.owner_id):
        raise forbidden("only the owner or an admin can change this video")
    return video


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _cursor_of(video: Video) -> str:
    created = video.created_at if video.created_at.tzinfo else video.created_at.replace(tzinfo=UTC)
    return f"{(created - _EPOCH) // _MICRO}-{video.id}"  # integer arithmetic: exact to the microsecond


@router.get("", response_model=ListEnvelope[VideoOut], responses=errors(304),
            summary="List videos (pages, or newest first by cursor for large lists)")
async def list_videos(principal: Auth, request: Request, session: Db, page: Page = 1, size: Size = 20,
                      sort: str | None = Sort,
                      state: Annotated[VideoState | None, Query(description="filter by state")] = None,
                      owner_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
                      cursor: Annotated[str | None, Query(
                          pattern=r"^[0-9]{1,16}-[0-9a-f]{32}$",
                          description="next_cursor of the previous answer: newest first from there, "
                                      "stable while videos are added (page and sort are then ignored)")] = None,
                      ) -> Response:
    stmt = select(Video)
    if state is not None:
        stmt = stmt.where(Video.state == state)
    if owner_id is not None:
        stmt = stmt.where(Video.owner_id == owner_id)
    if cursor is None:
        keyset = sort in (None, "-created_at")  # the cursor's own order, so a cursor can follow a page
        order = parse_sort(sort, _SORT, "-created_at")
        rows, pagination = await paginate(session, stmt, page, size, order,
                                          Video.id.desc() if keyset else Video.id)
    else:
        # Keyset: strictly older than the cursor's (created_at, id), newest first.
        micros, _, last_id = cursor.partition("-")
        at = _EPOCH + int(micros) * _MICRO
        stmt = stmt.where(or_(Video.created_at < at, and_(Video.created_at == at, Video.id < last_id)))
        rows, pagination = await paginate(session, stmt, 1, size, [Video.created_at.desc()], Video.id.desc())
        keyset = True
    # With a cursor, `total` counts the items from the cursor on.
    pagination["next_cursor"] = _cursor_of(rows[-1]) if keyset and len(rows) == size else None
    return respond(request, [out(v) for v in rows], pagination=pagination)


@router.post("", status_code=201, response_model=Envelope[VideoOut], responses=errors(),
             summary="Create a video and its upload (then PATCH the bytes to upload_url)")
async def create_video(body: VideoCreate, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin", "streamer")
    if body.size > ctx_of(request).settings.api.max_upload_bytes:
        raise ApiError(413, "video larger than the upload limit")
    video = Video(owner_id=principal.user_id, title=body.title, description=body.description,
                  filename=body.filename, state="awaiting_upload", size=body.size, sha256=body.sha256,
                  upload_offset=0, renditions=[])
    session.add(video)
    await session.commit()
    return respond(request, out(video), status=201, message="video created",
                   headers={"location": f"/api/v1/videos/{video.id}",
                            "upload-location": f"/api/v1/videos/{video.id}/upload", **TUS})


@router.get("/{video_id}", response_model=Envelope[VideoOut], responses=errors(304, 404), summary="Get a video")
async def get_video(video_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    return respond(request, out(await _load(session, video_id)))


async def _apply(session: Db, request: Request, video: Video, values: dict[str, Any]) -> Response:
    check_if_match(request, out(video))
    values["updated_at"] = datetime.now(UTC)
    values["version"] = video.version + 1
    result = await session.execute(update(Video).where(Video.id == video.id, Video.version == video.version)
                                   .values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise ApiError(412, "the resource changed while it was being updated")
    await session.commit()
    await session.refresh(video)
    return respond(request, out(video))


@router.put("/{video_id}", response_model=Envelope[VideoOut], responses=errors(404, 412),
            summary="Replace a video's mutable fields")
async def put_video(video_id: IdPath, body: VideoPut, principal: Auth, request: Request, session: Db) -> Response:
    video = await _load_owned(session, principal, video_id)
    return await _apply(session, request, video, body.model_dump())


@router.patch("/{video_id}", response_model=Envelope[VideoOut], responses=errors(404, 412),
              summary="Change some fields of a video (JSON Merge Patch)")
async def patch_video(video_id: IdPath, principal: Auth, request: Request, session: Db,
                      body: Annotated[VideoPatch, Body(media_type="application/merge-patch+json")]) -> Response:
    video = await _load_owned(session, principal, video_id)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if "title" in changes and changes["title"] is None:
        raise ApiError(422, "request is not valid", details=[{"field": "title", "message": "cannot be null"}])
    return await _apply(session, request, video, changes)


@router.delete("/{video_id}", status_code=204, responses=errors(404, 412), summary="Delete a video and its files")
async def delete_video(video_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    video = await session.get(Video, video_id)
    if video is None:
        return no_content()
    if not principal.owns(video.owner_id):
        raise forbidden("only the owner or an admin can delete this video")
    check_if_match(request, out(video))
    async with uploads(request).lock(video_id):
        await session.execute(delete(Video).where(Video.id == video_id))
        await session.commit()
        await uploads(request).remove(video_id, video.filename)
    return no_content()


# ---- upload (tus 1.0 core; HEAD is answered by the GET route) ----
@router.get("/{video_id}/upload", response_model=Envelope[VideoOut], responses=errors(304, 404),
            summary="Upload status: Upload-Offset and Upload-Length headers (HEAD works too)")
async def upload_status(video_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    video = await _load_owned(session, principal, video_id)
    offset = video.size if video.state not in ("awaiting_upload", "uploading") else \
        uploads(request).offset(video_id)
    video.upload_offset = offset
    headers = {"upload-offset": str(offset), "upload-length": str(video.size), "cache-control": "no-store", **TUS}
    return respond(request, out(video), headers=headers)


def _checksum(request: Request) -> bytes | None:
    raw = request.headers.get("upload-checksum")
    if raw is None:
        return None
    algo, _, value = raw.strip().partition(" ")
    if algo.lower() != "sha256":
        raise ApiError(400, "only sha256 upload checksums are supported", code="CHECKSUM_ALGORITHM")
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "upload-checksum is not base64", code="BAD_REQUEST") from None


@router.patch("/{video_id}/upload", status_code=204, responses=errors(404, 409, 460),
              summary="Append bytes at Upload-Offset (Content-Type: application/offset+octet-stream)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_chunk(video_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    raw_offset = request.headers.get("upload-offset", "")
    if not raw_offset.isdigit() or len(raw_offset) > 18:
        raise ApiError(400, "Upload-Offset header (a byte offset) is required", code="BAD_REQUEST", headers=TUS)
    offset = int(raw_offset)
    checksum = _checksum(request)
    store = uploads(request)
    lock = store.lock(video_id)
    if lock.locked():
        raise ApiError(409, "another upload request for this video is in progress", headers=TUS)
    async with lock:
        video = await _load_owned(session, principal, video_id)
        if video.state not in ("awaiting_upload", "uploading"):
            raise ApiError(409, "upload already complete", code="UPLOAD_COMPLETE", headers=TUS)
        await session.commit()  # give the connection back while the body streams in

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                if chunk:
                    yield chunk

        new_offset = offset
        try:
            new_offset = await store.append(video_id, offset, video.size - offset, body(), checksum)
        except OffsetMismatch as exc:
            raise ApiError(409, "Upload-Offset does not match the stored offset", code="OFFSET_MISMATCH",
                           headers={"upload-offset": str(exc.expected), **TUS}) from None
        except ChunkChecksumMismatch:
            raise ApiError(460, "chunk checksum mismatch", code="CHECKSUM_MISMATCH", headers=TUS) from None
        except ValueError:
            new_offset = store.offset(video_id)
            raise ApiError(413, "body runs past Upload-Length", headers=TUS) from None
        finally:
            # Whatever reached the disk is recorded, even when the client went away mid-body.
            stored = store.offset(video_id)
            await session.execute(update(Video).where(Video.id == video_id).values(
                upload_offset=stored, state="uploading" if stored < video.size else video.state,
                updated_at=datetime.now(UTC)))
            await session.commit()
        if new_offset == video.size:
            await _complete(request, session, video)
        return no_content({"upload-offset": str(new_offset), **TUS})


async def _complete(request: Request, session: Db, video: Video) -> None:
    store = uploads(request)
    try:
        path, digest = await store.finish(video.id, video.filename, video.sha256)
    except ValueError:
        await store.reset(video.id)
        await session.execute(update(Video).where(Video.id == video.id).values(
            upload_offset=0, state="awaiting_upload", updated_at=datetime.now(UTC)))
        await session.commit()
        raise ApiError(409, "the uploaded file does not match the declared sha256; upload it again",
                       code="CHECKSUM_MISMATCH", headers={"upload-offset": "0", **TUS}) from None
    ctx = ctx_of(request)
    packager = ctx.service("packager")
    submit = None
    if packager is not None:
        submit = next((fn for attr in ("submit", "enqueue", "package")
                       if callable(fn := getattr(packager, attr, None))), None)
    # The state is committed before the job is queued, so the packager's `vod.packaged` (which
    # marks the video ready) can never be overwritten by this request.
    await session.execute(update(Video).where(Video.id == video.id).values(
        state="packaging" if submit is not None else "uploaded", sha256=digest, upload_offset=video.size,
        updated_at=datetime.now(UTC), version=Video.version + 1))
    await session.commit()
    if submit is not None:
        try:
            await maybe_await(submit(video.id, path))
        except Exception:
            log.exception("packager refused video %s", video.id)
            await session.execute(update(Video).where(Video.id == video.id).values(
                state="uploaded", updated_at=datetime.now(UTC), version=Video.version + 1))
            await session.commit()
    if ctx.node is not None:
        ctx.node.bus.publish("video.uploaded", {"id": video.id, "path": str(path), "sha256": digest})


# ---- comments ----
@router.get("/{video_id}/comments", response_model=CursorEnvelope[CommentOut], responses=errors(304, 404),
            summary="Comments, oldest first, by cursor")
async def list_comments(video_id: IdPath, principal: Auth, request: Request, session: Db,
                        size: Size = 50,
                        cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="next_cursor of the previous page")] = None,
                        ) -> Response:
    await _load(session, video_id)
    stmt = select(Comment).where(Comment.video_id == video_id)
    if cursor is not None:  # comment ids only grow, so "after this id" is a stable cursor
        stmt = stmt.where(Comment.id > cursor)
    rows = list((await session.execute(stmt.order_by(Comment.id).limit(size + 1))).scalars().all())
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = rows[-1].id if more and rows else None
    return respond(request, [CommentOut.model_validate(c) for c in rows],
                   pagination={"size": size, "next_cursor": next_cursor})


# One Core statement, built once: the insert happens only if the video exists (no separate
# lookup, no ORM unit of work), and RETURNING hands back the new id.
_COMMENT_COLUMNS = (Comment.video_id, Comment.user_id, Comment.body, Comment.created_at)
_INSERT_COMMENT = (
    insert(Comment)
    .from_select([c.key for c in _COMMENT_COLUMNS],
                 select(*(bindparam(c.key, type_=c.type) for c in _COMMENT_COLUMNS))
                 .where(exists().where(Video.id == bindparam("video_id"))))
    .returning(Comment.id)
)


@router.post("/{video_id}/comments", status_code=201, response_model=Envelope[CommentOut], responses=errors(404),
             summary="Post a comment")
async def create_comment(video_id: IdPath, body: CommentCreate, principal: Auth, request: Request,
                         session: Db) -> Response:
    now = datetime.now(UTC)
    conn = await session.connection()
    comment_id = (await conn.execute(_INSERT_COMMENT, {"video_id": video_id, "user_id": principal.user_id,
                                                       "body": body.body, "created_at": now})).scalar_one_or_none()
    if comment_id is None:
        await session.rollback()
        raise not_found("video")
    await session.commit()
    data = {"id": comment_id, "video_id": video_id, "user_id": principal.user_id, "body": body.body,
            "created_at": json_time(now)}
    return respond(request, data, status=201, message="comment created",
                   headers={"location": f"/api/v1/videos/{video_id}/comments/{comment_id}"})


@router.get("/{video_id}/comments/{comment_id}", response_model=Envelope[CommentOut], responses=errors(304, 404),
            summary="Get a comment")
async def get_comment(video_id: IdPath, comment_id: CommentId,
                      principal: Auth, request: Request, session: Db) -> Response:
    comment = await session.get(Comment, comment_id)
    if comment is None or comment.video_id != video_id:
        raise not_found("comment")
    return respond(request, CommentOut.model_validate(comment))


@router.delete("/{video_id}/comments/{comment_id}", status_code=204, responses=errors(404),
               summary="Delete a comment (author or admin)")
async def delete_comment(video_id: IdPath, comment_id: CommentId, principal: Auth, request: Request,
                         session: Db) -> Response:
    comment = await session.get(Comment, comment_id)
    if comment is None or comment.video_id != video_id:
        return no_content()
    if not principal.owns(comment.user_id):
        raise forbidden("only the author or an admin can delete this comment")
    await session.execute(delete(Comment).where(Comment.id == comment_id))
    await session.commit()
    return no_content()
