"""Building envelope responses: JSON bytes, strong ETags from the bytes, conditional requests
(If-None-Match -> 304 on reads, If-Match -> 412 on writes), pagination and sorting."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util.typing import TupleAny
from starlette.responses import Response

from hivecast.api.errors import JSON_TYPE, ApiError
from hivecast.store import Store

READ_CACHE = "private, no-cache"  # clients may keep it but must revalidate (ETag)


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def json_time(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON (UTC as "Z"); SQLite's naive values are UTC."""
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def envelope_bytes(data: Any, message: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"success": True, "data": _dump(data), "message": message}
    body.update({k: _dump(v) for k, v in extra.items()})
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def entity_etag(data: Any) -> str:
    """The ETag a GET of this single resource carries."""
    return etag_of(envelope_bytes(data))


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def respond(request: Request, data: Any, *, status: int = 200, message: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = envelope_bytes(data, message, **extra)
    hdrs = dict(headers or {})
    if request.method in ("GET", "HEAD") and status == 200:
        tag = etag_of(body)
        hdrs["etag"] = tag
        hdrs.setdefault("cache-control", READ_CACHE)
        inm = request.headers.get("if-none-match")
        if inm is not None and (inm.strip() == "*" or tag in _tags(inm)):
            return Response(status_code=304, headers=hdrs)
    else:
        hdrs.setdefault("cache-control", "no-store")
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=hdrs)


def check_if_match(request: Request, current: Any) -> None:
    """Optimistic concurrency: a write carrying If-Match must name the current representation."""
    header = request.headers.get("if-match")
    if header is None:
        return
    if header.strip() == "*":
        return
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if entity_etag(current) not in tags:
        raise ApiError(412, "the resource changed since it was read (If-Match does not match)")


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers or {})


# ---- pagination and sorting ----
def parse_sort(sort: str | None, allowed: dict[str, Any], default: str) -> list[Any]:
    """`?sort=field,-other`: a leading '-' sorts descending. Only whitelisted columns."""
    spec = sort or default
    order: list[Any] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("-+")
        col = allowed.get(name)
        if col is None:
            raise ApiError(422, "unknown sort field", details=[
                {"field": "sort", "message": f"sortable fields: {', '.join(sorted(allowed))}"}])
        order.append(col.desc() if desc else col.asc())
    if len(order) > 4:
        raise ApiError(422, "too many sort fields", details=[{"field": "sort", "message": "at most 4"}])
    return order


async def paginate(session: AsyncSession, stmt: Select[*TupleAny], page: int, size: int,
                   order: Sequence[Any], tiebreak: Any) -> tuple[list[Any], dict[str, Any]]:
    """A page of ORM objects (`select(Entity)`) and its pagination block."""
    # One round trip: the total rides along as a window count on every row of the page.
    pairs = (await session.execute(_with_total(stmt, order, tiebreak).offset((page - 1) * size).limit(size))).all()
    if pairs or page == 1:
        return [p[0] for p in pairs], _block(page, size, int(pairs[0][-1]) if pairs else 0)
    # Past the last page: the count needs its own query.
    total = (await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    return [], _block(page, size, int(total))


@dataclass(frozen=True, slots=True)
class RowPage:
    """A list query built once per shape (which filters, which sort) with its values as bound
    parameters: building and cache-keying a statement per request was a tenth of a list's CPU."""

    rows: Select[*TupleAny]  # the page, with the total as a window count on every row
    count: Select[*TupleAny]  # the total alone, for a page past the end


def row_page(stmt: Select[*TupleAny], order: Sequence[Any], tiebreak: Any) -> RowPage:
    rows = _with_total(stmt, order, tiebreak).limit(bindparam("page_limit")).offset(bindparam("page_offset"))
    return RowPage(rows, select(func.count()).select_from(stmt.order_by(None).subquery()))


async def paginate_rows(store: Store, session: AsyncSession, query: RowPage, page: int, size: int,
                        params: dict[str, Any]) -> tuple[Sequence[Any], dict[str, Any]]:
    """A page of Core rows (no ORM objects to build) and its pagination block; each row also
    carries the `total` column."""
    rows = await store.read_rows(session, query.rows, {**params, "page_limit": size, "page_offset": (page - 1) * size})
    if rows or page == 1:
        return rows, _block(page, size, int(rows[0][-1]) if rows else 0)
    total = (await store.read_rows(session, query.count, params))[0][0]
    return rows, _block(page, size, int(total))


def _with_total(stmt: Select[*TupleAny], order: Sequence[Any], tiebreak: Any) -> Select[*TupleAny]:
    return stmt.add_columns(func.count().over().label("total")).order_by(*order, tiebreak)


def _block(page: int, size: int, total: int) -> dict[str, Any]:
    return {"page": page, "size": size, "total": total, "pages": math.ceil(total / size) if total else 0}


def empty_page(page: int, size: int) -> dict[str, Any]:
    return _block(page, size, 0)
