"""Where an edge on the Chord ring sends a cache fill (sans-I/O): to the key's owner edge, or to the
origin. Only the owner goes to the origin, so a region fetches each object once; a request that
came from another edge of the ring is never forwarded again, so two edges whose views of the ring
disagree for a moment cannot send a request round in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

# Set on a fill request an edge sends to the owner edge; its value is the asking edge's URL.
RING_HEADER = "x-hivecast-ring"
# On responses: which edge owns the key, and where this edge got the body from.
OWNER_HEADER = "x-ring-owner"
SOURCE_HEADER = "x-ring-source"
RING_RESPONSE_HEADERS = frozenset({OWNER_HEADER, SOURCE_HEADER})

# Requests the owner cannot share: a range is a partial fill, credentials make a private answer.
_NOT_SHARED = frozenset({"range", "authorization"})


class Route(Enum):
    ORIGIN = "origin"  # not a shareable fill, or a fill the owner asked of us: straight to the origin
    LOOKUP = "lookup"  # a shareable fill: find the key's owner first


def route(method: str, headers: Iterable[tuple[str, str]]) -> Route:
    """The first decision, before any lookup: does this upstream request go through the ring?"""
    if method != "GET":
        return Route.ORIGIN
    for name, _ in headers:
        name = name.lower()
        if name == RING_HEADER or name in _NOT_SHARED:
            return Route.ORIGIN
    return Route.LOOKUP


def ask_owner(owner_url: str | None, my_url: str) -> bool:
    """After the lookup: go to the owner if it is another edge (None: the ring gave no answer)."""
    return owner_url is not None and owner_url != "" and owner_url.rstrip("/") != my_url.rstrip("/")


def without_ring_fields(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Request fields for the origin: our marker stays inside the ring."""
    return [(k, v) for k, v in headers if k.lower() != RING_HEADER]


def mark_response(headers: Iterable[tuple[str, str]], *, owner: str | None, source: str) -> list[tuple[str, str]]:
    """Response fields as stored and sent on: the owner's own ring fields replaced by ours."""
    out = [(k, v) for k, v in headers if k.lower() not in RING_RESPONSE_HEADERS]
    if owner:
        out.append((OWNER_HEADER, owner))
    out.append((SOURCE_HEADER, source))
    return out


__all__ = ["OWNER_HEADER", "RING_HEADER", "SOURCE_HEADER", "Route", "ask_owner", "mark_response", "route",
           "without_ring_fields"]
