"""Shared bits of the routers: the documented error responses of each route, sessions, ids."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from hivecast.api.schemas import ErrorEnvelope
from hivecast.api.security import db

_DESCRIPTIONS = {
    304: "Not modified (If-None-Match matched the current ETag)",
    400: "Malformed request (e.g. invalid JSON)",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated but not allowed",
    404: "No such resource (or not visible to this account)",
    405: "Method not allowed on this path",
    409: "Conflicts with the current state",
    412: "If-Match did not match the current ETag",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Validation failed",
    460: "Checksum mismatch (tus checksum extension): the chunk was discarded",
    429: "Rate limited; see Retry-After",
    500: "Internal error",
    503: "A required service is unavailable",
}
# Every route can answer these: auth, rate limits, body limits and validation run everywhere.
_ALWAYS = (400, 401, 403, 405, 413, 415, 422, 429, 500, 503)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*_ALWAYS, *codes}):
        if code == 304:
            out[code] = {"description": _DESCRIPTIONS[code]}
        else:
            out[code] = {"model": ErrorEnvelope, "description": _DESCRIPTIONS[code]}
    return out


Db = Annotated[AsyncSession, Depends(db)]
CommentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="comment id")]
IdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="resource id (32 hex digits)")]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
Size = Annotated[int, Query(ge=1, le=100, description="items per page")]


def sort_param(*fields: str) -> Any:
    """`?sort=` limited (in the schema too) to the given fields: `name,-created_at`."""
    one = "[-+]?(" + "|".join(fields) + ")"
    return Query(None, max_length=200, pattern=f"^{one}(,{one}){{0,3}}$",
                 description=f"comma-separated, '-' for descending; fields: {', '.join(fields)}")
