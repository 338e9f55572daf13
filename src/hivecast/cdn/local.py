"""An in-process upstream: the embedded edge of `hivecast serve` calls the origin's media handlers
directly instead of making a loopback HTTP request."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from hivecast.cdn.upstream import UpstreamResponse
from hivecast.http.headers import Headers
from hivecast.http.message import BodyReader, FileBody, Request, Response
from hivecast.http.server import Handler

_CHUNK = 256 * 1024


def _finished_body() -> BodyReader:
    body = BodyReader(0, lambda: None)
    body.finish()
    return body


class LocalUpstream:
    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = sorted(handlers.items(), key=lambda item: len(item[0]), reverse=True)

    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> UpstreamResponse:
        parts = urlsplit(target)
        path = parts.path or "/"
        match = next(((p, h) for p, h in self.handlers if path.startswith(p)), None)
        if match is None:
            return UpstreamResponse(404, [("content-type", "text/plain")], _once(b"not found\n"))
        prefix, handler = match
        request = Request(method=method, target=target, raw_path=path, query_string=parts.query,
                          headers=Headers(headers), http_version="1.1", client=("127.0.0.1", 0),
                          server=("127.0.0.1", 0), body=_finished_body())
        request.route_prefix = prefix
        response = await handler(request)
        return _convert(response, method)


def _convert(response: Response, method: str) -> UpstreamResponse:
    headers = [(k.lower(), v) for k, v in response.headers if k.lower() != "content-length"]
    body = response.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        headers.append(("content-length", str(len(data))))
        return UpstreamResponse(response.status, headers, _once(b"" if method == "HEAD" else data))
    if isinstance(body, FileBody):
        try:
            size = os.stat(body.path).st_size
        except OSError:
            return UpstreamResponse(404, [("content-type", "text/plain")], _once(b"gone\n"))
        length = body.length if body.length is not None else max(0, size - body.offset)
        headers.append(("content-length", str(length)))
        return UpstreamResponse(response.status, headers, _file(body.path, body.offset, length))
    return UpstreamResponse(response.status, headers, _iterate(body))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def _file(path: os.PathLike[str] | str, offset: int, length: int) -> AsyncIterator[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        end = offset + length
        while offset < end:
            chunk = os.pread(fd, min(_CHUNK, end - offset), offset)
            if not chunk:
                raise ConnectionError("file shrank while being read")
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def _iterate(body: object) -> AsyncIterator[bytes]:
    async for chunk in body:  # type: ignore[attr-defined]
        if chunk:
            yield chunk
