"""/purges: purge and prefetch requests, published on the bus (`cdn.purge`, `cdn.prefetch`) and kept."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from hivecast.api.errors import not_found
from hivecast.api.responses import paginate, parse_sort, respond
from hivecast.api.routers.common import Db, IdPath, Page, Size, errors, sort_param
from hivecast.api.schemas import Envelope, ListEnvelope, PurgeCreate, PurgeKind, PurgeOut
from hivecast.api.security import Auth, ctx_of, require_role
from hivecast.store.models import Purge

router = APIRouter(prefix="/purges", tags=["purges"])
_SORT = {"created_at": Purge.created_at, "kind": Purge.kind}
Sort = sort_param("created_at", "kind")


@router.get("", response_model=ListEnvelope[PurgeOut], responses=errors(304), summary="List purges (admin)")
async def list_purges(principal: Auth, request: Request, session: Db, page: Page = 1, size: Size = 20,
                      sort: str | None = Sort,
                      kind: Annotated[PurgeKind | None, Query(description="filter by kind")] = None) -> Response:
    require_role(principal, "admin")
    stmt = select(Purge)
    if kind is not None:
        stmt = stmt.where(Purge.kind == kind)
    rows, pagination = await paginate(session, stmt, page, size, parse_sort(sort, _SORT, "-created_at"), Purge.id)
    return respond(request, [PurgeOut.model_validate(p) for p in rows], pagination=pagination)


@router.post("", status_code=201, response_model=Envelope[PurgeOut], responses=errors(),
             summary="Purge (url, prefix, tag) or prefetch (urls) on every edge (admin)")
async def create_purge(body: PurgeCreate, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin")
    purge = Purge(kind=body.kind, values=list(body.values), requested_by=principal.user_id, state="published")
    session.add(purge)
    await session.commit()
    node = ctx_of(request).node
    if node is not None:
        if body.kind == "prefetch":
            node.bus.publish("cdn.prefetch", {"id": purge.id, "urls": list(body.values)})
        else:
            node.bus.publish("cdn.purge", {"id": purge.id, "kind": body.kind, "values": list(body.values)})
    return respond(request, PurgeOut.model_validate(purge), status=201, message="published",
                   headers={"location": f"/api/v1/purges/{purge.id}"})


@router.get("/{purge_id}", response_model=Envelope[PurgeOut], responses=errors(304, 404), summary="Get a purge (admin)")
async def get_purge(purge_id: IdPath, principal: Auth, request: Request, session: Db) -> Response:
    require_role(principal, "admin")
    purge = await session.get(Purge, purge_id)
    if purge is None:
        raise not_found("purge")
    return respond(request, PurgeOut.model_validate(purge))
