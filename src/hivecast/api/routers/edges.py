"""/edges: the CDN edge registry (provided by the CDN capability as `edge_registry`)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hivecast.api.errors import not_found
from hivecast.api.responses import check_if_match, respond
from hivecast.api.routers.common import Page, Size, errors
from hivecast.api.schemas import EdgeOut, EdgePatch, Envelope, ListEnvelope
from hivecast.api.security import Auth, ctx_of, require_role
from hivecast.api.services import maybe_await, normalize_edge

router = APIRouter(prefix="/edges", tags=["edges"])
EdgeId = str


def _registry(request: Request) -> Any:
    return ctx_of(request).service("edge_registry")


async def _edges(request: Request) -> list[EdgeOut]:
    registry = _registry(request)
    if registry is None:  # no CDN on this node: no edges registered here
        return []
    raw = await maybe_await(registry.list_edges())
    edges = [normalize_edge(e) for e in (raw or [])]
    return sorted((EdgeOut(**e) for e in edges if e is not None), key=lambda e: e.id)


@router.get("", response_model=ListEnvelope[EdgeOut], responses=errors(304), summary="List edges (admin)")
async def list_edges(principal: Auth, request: Request, page: Page = 1, size: Size = 20) -> Response:
    require_role(principal, "admin")
    edges = await _edges(request)
    total = len(edges)
    items = edges[(page - 1) * size: page * size]
    return respond(request, items, pagination={"page": page, "size": size, "total": total,
                                               "pages": math.ceil(total / size) if total else 0})


async def _find(request: Request, edge_id: str) -> EdgeOut:
    for edge in await _edges(request):
        if edge.id == edge_id:
            return edge
    raise not_found("edge")


@router.get("/{edge_id}", response_model=Envelope[EdgeOut], responses=errors(304, 404), summary="Get an edge (admin)")
async def get_edge(edge_id: str, principal: Auth, request: Request) -> Response:
    require_role(principal, "admin")
    return respond(request, await _find(request, edge_id))


@router.patch("/{edge_id}", response_model=Envelope[EdgeOut], responses=errors(404, 412),
              summary="Drain or undrain an edge (admin)")
async def patch_edge(edge_id: str, body: EdgePatch, principal: Auth, request: Request) -> Response:
    require_role(principal, "admin")
    edge = await _find(request, edge_id)
    check_if_match(request, edge)
    ok = await maybe_await(_registry(request).set_draining(edge_id, body.draining))
    if not ok:
        raise not_found("edge")
    return respond(request, await _find(request, edge_id), message="draining" if body.draining else "serving")
