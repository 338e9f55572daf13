"""The edge cache as a front-door handler: lookup, hit, miss (coalesced fetch), revalidation,
stale serving, pass-through, invalidation, purge and prefetch.

The request steps, in the order Varnish names them:
  recv      pass-through (upgrades, API prefixes, unsafe methods) or cache lookup
  lookup    stored variant selected by Vary -> hit / stale / miss
  hit       fresh (RFC 9111 4.2) -> deliver, with Age, 304 or 206 as the client asked
  stale     stale-while-revalidate -> deliver and refresh in the background;
            otherwise validate upstream (coalesced), on failure stale-if-error or 502/504
  miss      join or start the single upstream fetch for the key, stream its growing body
  deliver   headers + X-Cache; bodies from memory, from disk (sendfile) or from the fetch
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from hivecast.cdn.cachecontrol import (
    RequestDirectives,
    ResponseDirectives,
    request_directives,
    response_directives,
)
from hivecast.cdn.coalesce import Fetch, FetchHead
from hivecast.cdn.forwarding import downstream_headers, upstream_headers
from hivecast.cdn.freshness import (
    age_header,
    current_age,
    freshness_lifetime,
    initial_age,
    judge,
    stale_if_error_allows,
)
from hivecast.cdn.invalidation import invalidation_targets
from hivecast.cdn.ranges import if_range_allows, parse_range
from hivecast.cdn.stats import EdgeStats
from hivecast.cdn.storability import is_storable
from hivecast.cdn.store import CacheStore, DiskWriter, StoredMeta, StoredObject, variant_of
from hivecast.cdn.upstream import UpstreamError, UpstreamResponse
from hivecast.cdn.validation import (
    can_validate,
    conditional_headers,
    headers_for_304,
    matches_304,
    not_modified_for_client,
    update_headers,
)
from hivecast.cdn.vary import vary_fields
from hivecast.http.headers import Headers
from hivecast.http.message import FileBody, RawResponse, Request, Response
from hivecast.http.protocol import encode_head, http_date
from hivecast.net.errors import NetError, NetTimeout

log = logging.getLogger(__name__)


class Upstream(Protocol):
    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> UpstreamResponse: ...


@dataclass(slots=True)
class EdgeConfig:
    via: str = "1.1 hivecast"
    read_timeout: float = 10.0
    max_object_size: int = 512 * 1024 * 1024
    pass_prefixes: tuple[str, ...] = ("/api/", "/ws/", "/cdn/")
    surrogate_target: str | None = None
    prefetch_segments: int = 3
    max_prefetches: int = 16
    authority: str | None = None
    tag_headers: tuple[str, ...] = ("surrogate-key", "cache-tag")
    # Bytes of a fetch's body held in memory for its readers; older bytes come from the cache file.
    fetch_buffer: int = 16 * 1024 * 1024
    # A range starting this far beyond what the whole-object fetch has is fetched as a range.
    range_ahead: int = 8 * 1024 * 1024


def _problem(status: int, message: str, label: str = "ERROR") -> Response:
    body = f"{status} {message}\n".encode()
    return Response(status, [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"),
                             ("x-cache", label)], body)


def _tags(headers: list[tuple[str, str]], names: tuple[str, ...]) -> list[str]:
    tags: list[str] = []
    for k, v in headers:
        k = k.lower()
        if k == "surrogate-key" and k in names:
            tags.extend(v.split())
        elif k in names:
            tags.extend(t.strip() for t in v.split(",") if t.strip())
    return sorted(set(tags))[:256]


_URI_ATTR = re.compile(r'URI="([^"]+)"')


def playlist_uris(text: str, limit: int) -> list[str]:
    """The last `limit` segment URIs (plus EXT-X-MAP init segments) a media playlist names."""
    segments: list[str] = []
    maps: list[str] = []
    for line in text.splitlines()[:100_000]:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#EXT-X-MAP"):
                maps.extend(_URI_ATTR.findall(line))
            continue
        segments.append(line)
    return maps[-1:] + segments[-limit:] if limit > 0 else []


class EdgeCache:
    def __init__(self, store: CacheStore, upstream: Upstream, *, passthrough: Callable[[Request], Awaitable[Response]],
                 config: EdgeConfig | None = None, clock: Callable[[], float] = time.time,
                 stats: EdgeStats | None = None) -> None:
        self.store = store
        self.upstream = upstream
        self.passthrough = passthrough
        self.config = config or EdgeConfig()
        self.clock = clock
        self.stats = stats or EdgeStats()
        self.inflight: dict[str, Fetch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefetching = 0

    # ---------------------------------------------------------------- recv
    async def __call__(self, request: Request) -> Response:
        self.stats.requests += 1
        path = request.raw_path
        if request.upgrade or path.startswith(self.config.pass_prefixes):
            self.stats.passed += 1
            return await self.passthrough(request)
        method = request.method
        if method not in ("GET", "HEAD"):
            self.stats.passed += 1
            response = await self.passthrough(request)
            self._invalidate(method, response, request)
            return response
        key = path + ("?" + request.query_string if request.query_string else "")
        req_cc = request_directives(request.headers) if (
            "cache-control" in request.headers or "pragma" in request.headers) else _NO_REQUEST_DIRECTIVES
        now = self.clock()
        obj = self.store.lookup(key, request.headers)
        if obj is not None:
            return await self._lookup_hit(request, key, obj, req_cc, now)
        if req_cc.only_if_cached:
            return _problem(504, "Gateway Timeout: not in cache (only-if-cached)", "MISS")
        return await self._miss(request, key, None, req_cc)

    def fast(self, request: Request) -> Response | RawResponse | None:
        """The synchronous fast path the front door offers bodiless GET/HEADs: a fresh hit held
        in the memory tier is answered without a task switch; anything else returns None."""
        path = request.raw_path
        if path.startswith(self.config.pass_prefixes) or "cache-control" in request.headers \
                or "pragma" in request.headers:
            return None
        key = path + ("?" + request.query_string if request.query_string else "")
        obj = self.store.lookup(key, request.headers, touch=False)
        if obj is None or obj.body is None:
            return None
        meta = obj.meta
        age = current_age(meta.initial_age, meta.response_time, self.clock())
        # judge() without request directives, inlined: fresh, and no no-cache to force validation.
        if age >= meta.lifetime or self._directives(obj).no_cache:
            return None
        self.store.touch(obj)
        self.stats.requests += 1
        self.stats.hits += 1
        rh = request.headers
        if request.method != "GET" or request.http_version != "1.1" or "range" in rh \
                or "if-none-match" in rh or "if-modified-since" in rh:
            return self._deliver(request, obj, "HIT", age)
        # A plain GET: the response bytes only change with Age (and Date, when the origin sent
        # none), so the last encoding is reused while both stay the same.
        age_value = age_header(age)
        date = http_date()
        wire = obj.wire
        if wire is None or wire[0] != age_value or wire[1] != date:
            response = self._deliver(request, obj, "HIT", age)
            body = response.body
            assert isinstance(body, bytes)
            raw = RawResponse(response.status, encode_head(response.status, response.headers, len(body), "1.1") + body)
            wire = obj.wire = (age_value, date, raw)
        else:
            self.stats.bytes_served += obj.meta.size
        result: RawResponse = wire[2]
        return result

    def _directives(self, obj: StoredObject) -> ResponseDirectives:
        cc = obj.directives
        if cc is None:
            cc = obj.directives = response_directives(obj.meta.header_list(),
                                                      surrogate_target=self.config.surrogate_target)
        assert isinstance(cc, ResponseDirectives)
        return cc

    # ---------------------------------------------------------------- lookup
    async def _lookup_hit(self, request: Request, key: str, obj: StoredObject, req_cc: RequestDirectives,
                          now: float) -> Response:
        meta = obj.meta
        cc = self._directives(obj)
        age = current_age(meta.initial_age, meta.response_time, now)
        verdict = judge(lifetime=meta.lifetime, age=age, cc=cc, req=req_cc)
        if verdict.fresh:
            self.stats.hits += 1
            return self._deliver(request, obj, "HIT", age)
        if req_cc.only_if_cached:
            return _problem(504, "Gateway Timeout: cached response is stale (only-if-cached)", "STALE")
        if verdict.stale_while_revalidate and can_validate(meta.header_list()):
            # RFC 5861 3: serve stale now, refresh in the background (one refresh per key).
            self.stats.stale += 1
            if key not in self.inflight:
                self._start_fetch(key, request, stale=obj)
            return self._deliver(request, obj, "STALE", age)
        return await self._miss(request, key, obj, req_cc)

    # ---------------------------------------------------------------- miss / validate
    def _start_fetch(self, key: str, request: Request | None, stale: StoredObject | None,
                     headers: list[tuple[str, str]] | None = None) -> Fetch:
        fetch = Fetch(key, read_timeout=self.config.read_timeout, max_buffer=self.config.fetch_buffer)
        if headers is None:
            assert request is not None
            headers = upstream_headers(request, for_cache=True, via=self.config.via)
        request_headers = request.headers if request is not None else Headers(headers)
        self.inflight[key] = fetch
        fetch.task = asyncio.get_running_loop().create_task(
            self._run_fetch(fetch, headers, request_headers, stale), name=f"cdn-fetch {key}")
        self._tasks.add(fetch.task)
        fetch.task.add_done_callback(self._tasks.discard)
        return fetch

    async def _miss(self, request: Request, key: str, stale: StoredObject | None,
                    req_cc: RequestDirectives) -> Response:
        fetch = self.inflight.get(key)
        leader = fetch is None
        # A fetch that already has the whole body (it is being committed to disk) is a hit.
        complete = fetch is not None and fetch.done and fetch.error is None
        if fetch is None:
            fetch = self._start_fetch(key, request, stale)
        elif not complete:
            self.stats.coalesced += 1
        fetch.waiters += 1
        try:
            try:
                async with asyncio.timeout(self.config.read_timeout + 1.0):
                    head = await asyncio.shield(fetch.head)
            except TimeoutError:
                raise NetTimeout("upstream did not answer in time") from None
        except NetError as exc:
            return self._upstream_failed(request, stale, req_cc, exc)
        except Exception as exc:
            return self._upstream_failed(request, stale, req_cc, exc)
        finally:
            fetch.waiters -= 1
        if head.revalidated is not None:
            self.stats.revalidated += 1
            obj = head.revalidated
            age = current_age(obj.meta.initial_age, obj.meta.response_time, self.clock())
            return self._deliver(request, obj, "REVALIDATED", age)
        if stale is not None and head.status >= 500:
            resp = self._stale_on_error(request, stale, req_cc)
            if resp is not None:
                return resp
        if not leader and (not head.storable or not fetch.can_read_from(_range_start(request, head))
                           or (head.vary and variant_of(head.vary, request.headers) != head.variant)):
            # Not shareable with this client (private, or another Vary variant): its own fetch.
            return await self._uncoalesced(request, key, req_cc)
        start = _range_start(request, head)
        if head.status == 200 and start - fetch.size > self.config.range_ahead:
            # A seek far beyond what the whole-object fetch has: ask upstream for just that range
            # now, while the fetch goes on filling the cache for later requests.
            return await self._uncoalesced(request, key, req_cc, label="MISS-RANGE")
        if leader:
            if head.storable:
                self.stats.misses += 1
            else:
                self.stats.uncacheable += 1
        elif complete:
            self.stats.hits += 1
        return self._deliver_fetch(request, fetch, head, "MISS" if leader else "HIT" if complete else "COALESCED")

    async def _uncoalesced(self, request: Request, key: str, req_cc: RequestDirectives,
                           label: str = "PASS") -> Response:
        if label == "PASS":
            self.stats.uncacheable += 1
        else:
            self.stats.misses += 1
        try:
            resp = await self.upstream.request("GET" if request.method == "HEAD" else request.method, key,
                                               upstream_headers(request, for_cache=False, via=self.config.via))
        except NetError as exc:
            return self._upstream_failed(request, None, req_cc, exc)
        self.stats.origin_requests += 1
        headers = downstream_headers(resp.headers)
        headers.append(("x-cache", label))
        length = resp.content_length
        if length is not None:
            headers.append(("content-length", str(length)))
        if request.method == "HEAD":
            await resp.close()
            return Response(resp.status, headers, b"")
        return Response(resp.status, headers, resp.body)

    def _upstream_failed(self, request: Request, stale: StoredObject | None, req_cc: RequestDirectives,
                         exc: BaseException) -> Response:
        if stale is not None:
            resp = self._stale_on_error(request, stale, req_cc)
            if resp is not None:
                return resp
        self.stats.errors += 1
        if isinstance(exc, NetTimeout):
            return _problem(504, "Gateway Timeout: the origin did not answer in time")
        if isinstance(exc, UpstreamError):
            return _problem(502, f"Bad Gateway: invalid response from the origin ({exc})")
        if isinstance(exc, NetError):
            return _problem(502, f"Bad Gateway: the origin is unreachable ({exc})")
        log.warning("upstream fetch failed: %r", exc)
        return _problem(502, "Bad Gateway: upstream fetch failed")

    def _stale_on_error(self, request: Request, stale: StoredObject, req_cc: RequestDirectives) -> Response | None:
        meta = stale.meta
        if self.store.lookup(meta.key, request.headers) is not stale:
            return None  # purged or replaced meanwhile
        cc = self._directives(stale)
        age = current_age(meta.initial_age, meta.response_time, self.clock())
        if not stale_if_error_allows(lifetime=meta.lifetime, age=age, cc=cc, req=req_cc):
            return None
        self.stats.stale += 1
        return self._deliver(request, stale, "STALE", age)

    async def _run_fetch(self, fetch: Fetch, headers: list[tuple[str, str]], request_headers: Headers,
                         stale: StoredObject | None) -> None:
        key = fetch.key
        writer: DiskWriter | None = None
        try:
            send = list(headers)
            if stale is not None:
                send.extend(conditional_headers(stale.meta.header_list()))
            request_time = self.clock()
            resp = await self.upstream.request("GET", key, send)
            response_time = self.clock()
            self.stats.origin_requests += 1
            req_cc = request_directives(request_headers)
            cc = response_directives(resp.headers, surrogate_target=self.config.surrogate_target)
            if resp.status == 304 and stale is not None:
                await resp.close()
                if matches_304(stale.meta.header_list(), resp.headers):
                    new_headers = update_headers(stale.meta.header_list(), downstream_headers(resp.headers))
                    new_cc = response_directives(new_headers, surrogate_target=self.config.surrogate_target)
                    self.store.update_meta(
                        stale, new_headers, request_time=request_time, response_time=response_time,
                        initial_age=initial_age(resp.headers, request_time, response_time),
                        lifetime=freshness_lifetime(stale.meta.status, new_headers, new_cc))
                    fetch.set_head(FetchHead(304, new_headers, True, stale.meta.vary, stale.meta.variant,
                                             stale.meta.size, revalidated=stale))
                    fetch.finish()
                    return
                # A 304 for another representation: fetch it whole, unconditionally.
                resp = await self.upstream.request("GET", key, list(headers))
                self.stats.origin_requests += 1
            stored_headers = downstream_headers(resp.headers)
            storable, _why = is_storable("GET", resp.status, resp.headers, cc, req_cc,
                                         request_has_authorization="authorization" in request_headers)
            length = resp.content_length
            if length is not None and length > self.config.max_object_size:
                storable = False
            vary = list(_vary(resp.headers))
            variant = variant_of(vary, request_headers)
            first_age = initial_age(resp.headers, request_time, response_time)
            fetch.set_head(FetchHead(resp.status, stored_headers, storable, vary, variant, length, age=first_age))
            if not storable and fetch.task is not None:
                # Nobody else can join an uncacheable fetch: when its reader leaves, stop downloading.
                fetch.on_unread = functools.partial(_cancel, fetch.task)
            in_memory = storable and length is not None and length <= self.store.memory_object_max
            if storable and not in_memory:
                writer = self.store.disk_writer()
                if writer is None:
                    storable = False
                else:
                    fetch.set_backing(writer.tmp)
            async for chunk in resp.body:
                self.stats.bytes_from_origin += len(chunk)
                # Written first, so the bytes are in the backing file before memory may drop them.
                if writer is not None:
                    if writer.write(chunk):
                        fetch.backed_up_to(writer.size)
                    else:
                        writer = None
                        storable = False
                fetch.feed(chunk)
                if fetch.size > self.config.max_object_size and storable:
                    storable = False
                    if writer is not None:
                        writer.abort("object over max_object_size")
                        writer = None
            fetch.finish()
            if storable and not fetch.purged and (length is None or fetch.size == length):
                lifetime = freshness_lifetime(resp.status, resp.headers, cc)
                meta = StoredMeta(
                    key=key, variant=variant, vary=vary, status=resp.status,
                    headers=[[k, v] for k, v in stored_headers], request_time=request_time,
                    response_time=response_time, initial_age=first_age, lifetime=lifetime, size=fetch.size, tags=_tags(resp.headers, self.config.tag_headers))
                if writer is not None:
                    w, writer = writer, None
                    await self.store.commit_disk(meta, w)
                elif in_memory:
                    body = fetch.body()
                    if body is not None:
                        self.store.put_memory(meta, body)
                if self._is_playlist(key, stored_headers) and self.config.prefetch_segments > 0:
                    body = fetch.body()
                    if body is not None:
                        self._prefetch_playlist(key, body, headers)
        except asyncio.CancelledError:
            fetch.fail(ConnectionError("fetch cancelled"))
            raise
        except Exception as exc:
            fetch.fail(exc)
        finally:
            if writer is not None:
                writer.abort("fetch ended")
            if self.inflight.get(key) is fetch:
                del self.inflight[key]
            fetch.release()

    # ---------------------------------------------------------------- deliver
    def _deliver(self, request: Request, obj: StoredObject, label: str, age: float) -> Response:
        meta = obj.meta
        base = obj.base
        if base is None:
            base = obj.base = meta.header_list()
        tail = [("age", age_header(age)), ("x-cache", label)]
        rh = request.headers
        if ("if-none-match" in rh or "if-modified-since" in rh) and meta.status == 200 \
                and not_modified_for_client(request.method, rh, base):
            return Response(304, headers_for_304(base) + tail)
        size = meta.size
        start, length, status = 0, size, meta.status
        headers = base + tail
        if "range" in rh and request.method == "GET" and status == 200:
            etag = _get(base, "etag")
            lm = _get(base, "last-modified")
            rng = parse_range(rh["range"], size) if if_range_allows(rh, etag, lm) else None
            if rng is False:
                return Response(416, [*headers, ("content-range", f"bytes */{size}")], b"")
            if isinstance(rng, tuple):
                start, length, status = rng[0], rng[1] - rng[0] + 1, 206
                headers = [*headers, ("content-range", f"bytes {rng[0]}-{rng[1]}/{size}")]
        if request.method == "HEAD":
            return Response(status, [*headers, ("content-length", str(length))], b"")
        self.stats.bytes_served += length
        if obj.body is not None:
            body = obj.body if length == size else obj.body[start:start + length]
            return Response(status, headers, body)
        assert obj.path is not None
        return Response(status, headers, FileBody(obj.path, start, length))

    def _deliver_fetch(self, request: Request, fetch: Fetch, head: FetchHead, label: str) -> Response:
        headers = [*head.headers, ("x-cache", label)]
        if head.age >= 1.0:
            # A response that was already old upstream (a parent's hit) says so (RFC 9111 5.1).
            headers.append(("age", age_header(head.age)))
        length = head.content_length
        status = head.status
        rh = request.headers
        if status == 200 and ("if-none-match" in rh or "if-modified-since" in rh) \
                and not_modified_for_client(request.method, rh, head.headers):
            return Response(304, [*headers_for_304(head.headers), ("x-cache", label)])
        start, end = 0, length
        if "range" in rh and request.method == "GET" and status == 200 and length is not None:
            rng = parse_range(rh["range"], length) if if_range_allows(
                rh, _get(head.headers, "etag"), _get(head.headers, "last-modified")) else None
            if rng is False:
                return Response(416, [*headers, ("content-range", f"bytes */{length}")], b"")
            if isinstance(rng, tuple):
                start, end, status = rng[0], rng[1] + 1, 206
                headers.append(("content-range", f"bytes {rng[0]}-{rng[1]}/{length}"))
        if end is not None:
            headers.append(("content-length", str(end - start)))
        if request.method == "HEAD" or status in (204, 304):
            return Response(status, headers, b"")
        if end is not None:
            self.stats.bytes_served += end - start
        return Response(status, headers, fetch.stream(start, end))

    # ---------------------------------------------------------------- invalidation, purge, prefetch
    def _invalidate(self, method: str, response: Response, request: Request) -> None:
        for target in invalidation_targets(method, response.status, request.target, response.headers,
                                           self.config.authority or request.headers.get("host")):
            self.store.purge_key(target)

    def purge(self, kind: str, values: list[str]) -> int:
        removed = 0
        for value in values[:10_000]:
            if kind == "url":
                removed += self.store.purge_key(_path_of(value))
            elif kind == "prefix":
                removed += self.store.purge_prefix(_path_of(value))
            elif kind == "tag":
                removed += self.store.purge_tag(value)
            elif kind == "all":
                removed += self.store.purge_all()
            self._purge_inflight(kind, value)
        self.stats.purged += removed
        return removed

    def _purge_inflight(self, kind: str, value: str) -> None:
        """A fetch that started before the purge must not store what it got: its body may be the
        content the purge is meant to remove. Later requests start a fresh fetch."""
        for key, fetch in list(self.inflight.items()):
            if kind == "url":
                hit = key == _path_of(value)
            elif kind == "prefix":
                hit = key.startswith(_path_of(value))
            elif kind == "tag":
                # Tags are known once the head arrived; before that, assume the worst.
                hit = not fetch.head.done() or fetch.head.cancelled() or fetch.head.exception() is not None \
                    or value in _tags(fetch.head.result().headers, self.config.tag_headers)
            else:
                hit = True
            if hit:
                fetch.purged = True
                del self.inflight[key]

    def prefetch(self, urls: list[str]) -> int:
        started = 0
        for url in urls[:1000]:
            key = _path_of(url)
            if not key.startswith("/") or key.startswith(self.config.pass_prefixes):
                continue
            if key in self.inflight or self.store.variants(key):
                continue
            if self._prefetching >= self.config.max_prefetches:
                break
            self._start_prefetch(key, [("via", self.config.via)])
            started += 1
        return started

    def _start_prefetch(self, key: str, headers: list[tuple[str, str]]) -> None:
        self.stats.prefetches += 1
        self._prefetching += 1
        fetch = self._start_fetch(key, None, None, headers=headers)

        def done(_: object) -> None:
            self._prefetching -= 1

        assert fetch.task is not None
        fetch.task.add_done_callback(done)

    @staticmethod
    def _is_playlist(key: str, headers: list[tuple[str, str]]) -> bool:
        ctype = (_get(headers, "content-type") or "").lower()
        return key.split("?", 1)[0].endswith(".m3u8") or "mpegurl" in ctype

    def _prefetch_playlist(self, key: str, body: bytes, headers: list[tuple[str, str]]) -> None:
        """A new playlist names segments: fetch the newest ones before the first viewer asks."""
        try:
            text = body[:4 * 1024 * 1024].decode("utf-8", "replace")
        except Exception:
            return
        if "#EXT-X-STREAM-INF" in text:
            return  # a master playlist names other playlists, not segments
        base = key.split("?", 1)[0]
        keep = [(k, v) for k, v in headers if k in ("via", "user-agent", "accept-encoding")]
        for uri in playlist_uris(text, self.config.prefetch_segments):
            target = urljoin(base, uri)
            parts = urlsplit(target)
            if parts.scheme or parts.netloc:
                continue  # another host: not ours to fetch
            if target in self.inflight or self.store.variants(target):
                continue
            if self._prefetching >= self.config.max_prefetches:
                return
            self._start_prefetch(target, keep)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


_NO_REQUEST_DIRECTIVES = RequestDirectives()


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _vary(headers: list[tuple[str, str]]) -> list[str]:
    return list(vary_fields(headers))


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


def _range_start(request: Request, head: FetchHead) -> int:
    """Where in the body this request starts reading (0 unless it asks for a satisfiable range)."""
    value = request.headers.get("range")
    if value is None or head.content_length is None:
        return 0
    rng = parse_range(value, head.content_length)
    return rng[0] if isinstance(rng, tuple) else 0


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return url


__all__ = ["EdgeCache", "EdgeConfig", "Upstream", "playlist_uris"]
