"""Three edge-like nodes on a Chord ring in front of a test origin, all on loopback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from hivecast.chord.placement import RingEdge, http_get
from hivecast.http import HttpServer, Request, Response

pytestmark = pytest.mark.timeout(60)


def body_for(key: str) -> bytes:
    return (f"object {key}\n" * 500).encode()


async def agreed_owner(edges: list[RingEdge], key: str, *, timeout: float = 15.0) -> str:
    """Poll until every edge names the same live owner for `key` several times in a row."""
    live = {e.url for e in edges}
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        owners = {await e.owner_of(key) for e in edges}
        if len(owners) == 1 and owners <= live:
            streak += 1
            if streak >= 3:
                return owners.pop()  # type: ignore[return-value]
        else:
            streak = 0
        await asyncio.sleep(0.2)
    pytest.fail(f"edges did not agree on the owner of {key!r}")


async def test_object_fetched_once_then_served_by_owner_and_ring_heals_after_leave() -> None:
    hits: Counter[str] = Counter()

    async def origin_handler(request: Request) -> Response:
        key = request.path.lstrip("/")
        hits[key] += 1
        return Response(200, [("content-type", "application/octet-stream")], body_for(key))

    origin = HttpServer(origin_handler, host="127.0.0.1", port=0)
    await origin.start()
    origin_url = f"http://127.0.0.1:{origin.port}"
    edges = [RingEdge(origin_url, name=f"edge-{i}") for i in range(3)]
    await edges[0].start()
    assert edges[0].ring is not None
    first = edges[0].ring.me.addr
    for edge in edges[1:]:
        await edge.start(join=first)
    try:
        keys = [f"vod/video{i}/seg{i}.ts" for i in range(6)]
        owners = {k: await agreed_owner(edges, k) for k in keys}
        assert len(set(owners.values())) >= 2  # keys spread over the ring
        key = keys[0]
        sources = []
        for edge in edges:
            status, fields, body = await http_get(f"{edge.url}/objects/{key}")
            assert status == 200 and body == body_for(key)
            sources.append(fields["x-hivecast-source"])
        assert hits[key] == 1  # one origin fetch for three edges
        assert sorted(sources) == ["owner", "peer", "peer"]
        owner_edge = next(e for e in edges if e.url == owners[key])
        assert owner_edge.served_as_owner == 3 and owner_edge.origin_fetches == 1

        # The owner leaves (without notice). The others converge on a new owner among themselves.
        await owner_edge.stop()
        remaining = [e for e in edges if e is not owner_edge]
        new_owner = await agreed_owner(remaining, key)
        assert new_owner != owner_edge.url
        for edge in remaining:
            status, fields, body = await http_get(f"{edge.url}/objects/{key}")
            assert status == 200 and body == body_for(key)  # nothing served wrong
        assert hits[key] == 2  # the new owner fetched it once
        for k in keys[1:]:  # every key resolves to a live edge and serves the right bytes
            owner = await agreed_owner(remaining, k)
            assert owner in {e.url for e in remaining}
            status, _, body = await http_get(f"{remaining[0].url}/objects/{k}")
            assert status == 200 and body == body_for(k)
    finally:
        for edge in edges:
            await edge.stop()
        await origin.close(grace=0.2)
