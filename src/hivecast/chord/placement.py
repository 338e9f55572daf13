"""Cooperative edge caching on a Chord ring (a minimal edge of our own; the CDN edge can call
`owner_of` the same way): a miss at any edge asks the key's owner edge, and only the owner goes to
the origin, once per object (concurrent misses share one fetch). Non-owners do not keep copies, so a
region holds one copy per object; when an edge leaves, its keys move to its successor, which fetches
them again from the origin on the next miss. A peer request carries `x-hivecast-ring-hop` so it is
never forwarded twice; if the owner cannot be reached the edge goes to the origin itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote, urlsplit

from hivecast.chord.server import ChordServer
from hivecast.http import HttpServer, Request, Response
from hivecast.net import NetError, connect

HOP_HEADER = "x-hivecast-ring-hop"
MAX_OBJECT = 64 * 1024 * 1024


class FetchError(Exception):
    """The upstream did not give us a 200 with a body."""


async def http_get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
                   max_bytes: int = MAX_OBJECT) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 GET (Connection: close, Content-Length or read-to-EOF bodies)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"unsupported URL {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    head = [f"GET {path} HTTP/1.1", f"Host: {parts.hostname}:{port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    try:
        async with asyncio.timeout(timeout):
            conn = await connect(parts.hostname, port)
            try:
                await conn.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                status_line = await conn.readuntil(b"\r\n")
                fields: dict[str, str] = {}
                while True:
                    line = await conn.readuntil(b"\r\n")
                    if line == b"\r\n":
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    fields[name.strip().lower()] = value.strip()
                length = fields.get("content-length")
                if length is not None:
                    if not length.isdigit() or int(length) > max_bytes:
                        raise FetchError("bad or too large content-length")
                    body = await conn.readexactly(int(length)) if int(length) else b""
                else:
                    chunks = []
                    total = 0
                    while not conn.at_eof():
                        chunk = await conn.read(65536)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > max_bytes:
                            raise FetchError("body too large")
                        chunks.append(chunk)
                    body = b"".join(chunks)
            finally:
                await conn.close()
    except (TimeoutError, NetError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
        raise FetchError(f"GET {url}: {exc!r}") from None
    parts_status = status_line.split()
    if len(parts_status) < 2 or not parts_status[1].isdigit():
        raise FetchError("malformed status line")
    return int(parts_status[1]), fields, body


class RingEdge:
    """An edge-like node: HTTP on /objects/KEY, placement by the Chord ring, origin behind it."""

    def __init__(self, origin_url: str, *, host: str = "127.0.0.1", name: str | None = None) -> None:
        self.origin_url = origin_url.rstrip("/")
        self.host = host
        self.name = name
        self.http = HttpServer(self.handle, host=host, port=0, name="ring-edge")
        self.ring: ChordServer | None = None
        self.store: dict[str, tuple[str, bytes]] = {}  # key -> (content type, body): owner copies only
        self._inflight: dict[str, asyncio.Future[tuple[str, bytes]]] = {}
        self.origin_fetches = 0
        self.peer_fetches = 0  # objects this edge got from the owner edge
        self.served_as_owner = 0
        self.origin_fallbacks = 0
        self.url = ""

    async def start(self, join: tuple[str, int] | None = None) -> None:
        await self.http.start()
        self.url = f"http://{self.host}:{self.http.port}"
        self.ring = ChordServer(host=self.host, url=self.url, name=self.name)
        await self.ring.start(join)

    async def stop(self) -> None:
        if self.ring is not None:
            await self.ring.stop()
        await self.http.close(grace=0.2)

    async def owner_of(self, key: str) -> str | None:
        assert self.ring is not None
        return await self.ring.owner_of(key)

    async def handle(self, request: Request) -> Response:
        if request.method != "GET" or not request.path.startswith("/objects/"):
            return Response.text("not found\n", 404)
        key = request.path[len("/objects/"):]
        if not key or len(key) > 1024:
            return Response.text("bad key\n", 400)
        from_peer = request.headers.get(HOP_HEADER) is not None
        owner = None if from_peer else await self.owner_of(key)
        try:
            if from_peer or owner is None or owner == self.url:
                if owner is None and not from_peer:
                    self.origin_fallbacks += 1  # no ring answer: behave as a plain edge for this request
                ctype, body = await self._owned(key)
                if from_peer or owner == self.url:
                    self.served_as_owner += 1
                source = "owner"
            else:
                try:
                    ctype, body = await self._from_peer(owner, key)
                    self.peer_fetches += 1
                    source = "peer"
                except FetchError:
                    self.origin_fallbacks += 1
                    ctype, body = await self._from_origin(key)
                    source = "origin-fallback"
        except FetchError as exc:
            return Response.text(f"upstream failed: {exc}\n", 502)
        return Response(200, [("content-type", ctype), ("x-hivecast-source", source)], body)

    async def _owned(self, key: str) -> tuple[str, bytes]:
        cached = self.store.get(key)
        if cached is not None:
            return cached
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                value = await self._from_origin(key)
                self.store[key] = value
                fut.set_result(value)
            except FetchError as exc:
                fut.set_exception(exc)
                with contextlib.suppress(FetchError):
                    await fut  # retrieve it so the loop does not warn; waiters get it too
                raise
            finally:
                self._inflight.pop(key, None)
            return value
        return await asyncio.shield(fut)

    async def _from_origin(self, key: str) -> tuple[str, bytes]:
        self.origin_fetches += 1
        status, fields, body = await http_get(f"{self.origin_url}/{quote(key)}")
        if status != 200:
            raise FetchError(f"origin answered {status}")
        return fields.get("content-type", "application/octet-stream"), body

    async def _from_peer(self, owner_url: str, key: str) -> tuple[str, bytes]:
        status, fields, body = await http_get(f"{owner_url}/objects/{quote(key)}", headers={HOP_HEADER: "1"},
                                              timeout=5.0)
        if status != 200:
            raise FetchError(f"owner answered {status}")
        return fields.get("content-type", "application/octet-stream"), body
