"""/relays: the node's push relays and pull sources (RTMP and RTSP) with their live status, read-only.

The relays themselves are `Reconnecting` objects owned by the protocol components: RTMP's
`RelayManager` (`node.services["rtmp_relays"]`) and RTSP's list (`node.services["rtsp_relays"]`).
Targets often carry a secret (a platform's stream key in the path, a password, a `?key=`), so the
URL shown is redacted.
"""

from __future__ import annotations

import math
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from hivecast.api.responses import respond
from hivecast.api.routers.common import Page, Size, errors
from hivecast.api.schemas import ListEnvelope
from hivecast.api.security import Auth, ctx_of, require_role

router = APIRouter(prefix="/relays", tags=["relays"])

SECRET_MIN = 12  # a last path segment at least this long is taken for a stream key and shortened
SECRET_PARAMS = ("key", "token", "secret", "password", "pass", "auth", "sign", "signature")


class RelayOut(BaseModel):
    protocol: Literal["rtmp", "rtsp"]
    kind: Literal["push", "pull"] = Field(description="push: a local stream sent out; pull: a remote one taken in")
    stream: str = Field(description="the local stream name")
    target: str = Field(description="the remote URL, secrets redacted (password, key-like query values, "
                                    "a long last path segment shortened to its first 4 characters)")
    state: str = Field(description="idle, waiting (for the local stream), connecting, running, retrying, stopped")
    attempts: int = Field(description="connections tried since the node started")
    reconnects: int = Field(description="attempts after the first")
    bytes: int = Field(description="media bytes carried")
    connected_for: float = Field(description="seconds the current connection has been running (0 if not running)")
    last_error: str | None = Field(description="why the last connection ended, if it failed")


def redact(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}" if parts.password else f"{parts.username}@{netloc}"
    head, sep, last = parts.path.rpartition("/")
    if len(last) >= SECRET_MIN:
        last = last[:4] + "***"
    query = urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, head + sep + last, query, ""))


def _out(status: dict[str, Any]) -> RelayOut:
    url = str(status["url"])
    return RelayOut(protocol="rtsp" if url.startswith(("rtsp", "rtsps")) else "rtmp",
                    kind="pull" if status["kind"] == "pull" else "push", stream=status["name"], target=redact(url),
                    state=status["state"], attempts=status["attempts"], reconnects=status["reconnects"],
                    bytes=status["bytes"], connected_for=status["connected_for"],
                    last_error=status["last_error"] or None)


def _relays(request: Request) -> list[RelayOut]:
    ctx = ctx_of(request)
    statuses: list[dict[str, Any]] = []
    manager = ctx.service("rtmp_relays")
    if manager is not None:
        statuses += manager.list()
    statuses += [relay.status() for relay in ctx.service("rtsp_relays") or []]
    # Forwarders of the CLI are not a node's relays; only push and pull are listed.
    relays = [_out(s) for s in statuses if s["kind"] in ("push", "pull")]
    return sorted(relays, key=lambda r: (r.stream, r.protocol, r.kind, r.target))


@router.get("", response_model=ListEnvelope[RelayOut], responses=errors(304),
            summary="List push relays and pull sources with their status (admin)")
async def list_relays(principal: Auth, request: Request, page: Page = 1, size: Size = 20,
                      stream: str | None = Query(None, max_length=200, description="only this local stream"),
                      ) -> Response:
    require_role(principal, "admin")
    relays = [r for r in _relays(request) if stream is None or r.stream == stream]
    total = len(relays)
    items = relays[(page - 1) * size: page * size]
    return respond(request, items, pagination={"page": page, "size": size, "total": total,
                                               "pages": math.ceil(total / size) if total else 0})
