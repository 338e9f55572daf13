"""Prefix routing for the front door: exact paths, then the longest matching prefix.

A prefix route may also name a suffix (`/live/` + `.flv`): among routes with the same prefix, one
whose suffix matches wins over the plain prefix, so a capability can claim one kind of path below
a prefix another capability owns without either knowing the other.
"""

from __future__ import annotations

from hivecast.http.message import RawResponse, Request, Response
from hivecast.http.server import Handler


async def not_found(request: Request) -> Response:
    return Response.text("not found\n", status=404)


class Router:
    def __init__(self, fallback: Handler = not_found) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, str, Handler]] = []
        self.fallback = fallback

    def exact(self, path: str, handler: Handler) -> None:
        self._exact[path] = handler

    def prefix(self, prefix: str, handler: Handler, *, suffix: str = "") -> None:
        """Route every path that starts with `prefix` (give "/live/" to match below /live) and,
        when given, ends with `suffix`."""
        self._prefixes.append((prefix, suffix, handler))
        # stable sort: among equal keys the first registered wins
        self._prefixes.sort(key=lambda item: (len(item[0]), bool(item[1])), reverse=True)

    def resolve(self, path: str) -> tuple[str, Handler]:
        handler = self._exact.get(path)
        if handler is not None:
            return path, handler
        for prefix, suffix, handler in self._prefixes:
            if path.startswith(prefix) and path.endswith(suffix):
                return prefix, handler
        return "", self.fallback

    async def __call__(self, request: Request) -> Response:
        prefix, handler = self.resolve(request.path)
        request.route_prefix = prefix
        return await handler(request)

    def fast(self, request: Request) -> Response | RawResponse | None:
        """The synchronous fast path of the handler this request routes to, if it has one."""
        prefix, handler = self.resolve(request.path)
        fast = getattr(handler, "fast", None)
        if fast is None:
            return None
        request.route_prefix = prefix
        response: Response | RawResponse | None = fast(request)
        return response
