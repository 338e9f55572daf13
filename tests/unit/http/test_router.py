"""Routing: exact paths, longest prefix, suffix routes under a shared prefix."""

from __future__ import annotations

from hivecast.http import Request, Response, Router


def named(label: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        return Response.text(label)

    return handler


def test_longest_prefix_then_suffix_then_first_registered() -> None:
    router = Router()
    store, flv, stream, other = named("store"), named("flv"), named("stream"), named("other")
    router.prefix("/live/", store)
    router.prefix("/live/", other)  # same prefix, registered later: never chosen
    router.prefix("/live/", flv, suffix=".flv")
    router.prefix("/live/demo/", stream)
    assert router.resolve("/live/demo.flv") == ("/live/", flv)
    assert router.resolve("/live/cam/index.m3u8") == ("/live/", store)
    assert router.resolve("/live/demo/index.m3u8") == ("/live/demo/", stream)
    assert router.resolve("/vod/x")[0] == ""


def test_exact_beats_prefix() -> None:
    router = Router()
    a, b = named("a"), named("b")
    router.prefix("/live/", a)
    router.exact("/live/_time", b)
    assert router.resolve("/live/_time") == ("/live/_time", b)
