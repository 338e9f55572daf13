"""The edge end to end: a real edge node in front of a scripted origin, over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hivecast.cdn.edge import EdgeCache
from hivecast.node import Node
from tests.conftest import NodeFactory, node_url
from tests.e2e.cdn_support import FakeClock, ScriptedOrigin, digest, running_origin, until

MAXAGE = [("cache-control", "max-age=60"), ("content-type", "text/plain")]

@pytest.fixture
async def origin() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o



async def make_edge(node_factory: NodeFactory, origin: ScriptedOrigin, **cdn: Any) -> tuple[Node, EdgeCache, FakeClock]:
    settings: dict[str, Any] = {"upstream_timeout": 2.0, "heartbeat_interval": 30.0}
    settings.update(cdn)
    node = await node_factory("edge", origin_url=origin.url, cdn=settings)
    edge: EdgeCache = node.services["edge_cache"]
    clock = FakeClock(time.time())
    edge.clock = clock
    origin.clock = clock
    return node, edge, clock


@pytest.fixture
async def client() -> Any:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


async def test_miss_then_hit_with_age(node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/a.txt", headers=MAXAGE, body=b"hello")
    node, _, clock = await make_edge(node_factory, origin)
    r1 = await client.get(node_url(node, "/a.txt"))
    assert r1.status_code == 200 and r1.content == b"hello" and r1.headers["x-cache"] == "MISS"
    clock.advance(5)
    r2 = await client.get(node_url(node, "/a.txt"))
    assert r2.headers["x-cache"] == "HIT" and r2.content == b"hello" and int(r2.headers["age"]) >= 5
    clock.advance(3)  # the reused encoding of the hit must follow the Age
    r3 = await client.get(node_url(node, "/a.txt"))
    assert r3.content == b"hello" and int(r3.headers["age"]) >= 8
    assert origin.count("/a.txt") == 1
    head = await client.head(node_url(node, "/a.txt"))
    assert head.headers["content-length"] == "5" and head.headers["x-cache"] == "HIT"


async def test_no_store_private_and_uncacheable_statuses_reach_origin(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/ns", headers=[("cache-control", "no-store")], body=b"x")
    origin.set("/priv", headers=[("cache-control", "private, max-age=60")], body=b"x")
    origin.set("/err", status=503, headers=[("cache-control", "max-age=60")], body=b"x")
    origin.set("/cdn-cc", headers=[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")], body=b"c")
    node, _, _ = await make_edge(node_factory, origin)
    for path in ("/ns", "/priv", "/err", "/cdn-cc"):
        for _ in range(2):
            await client.get(node_url(node, path))
    assert origin.count("/ns") == 2 and origin.count("/priv") == 2 and origin.count("/err") == 2
    assert origin.count("/cdn-cc") == 1  # RFC 9213: CDN-Cache-Control overrides Cache-Control at the edge


async def test_vary_keeps_one_variant_per_normalized_value(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/v", headers=[*MAXAGE, ("vary", "Accept-Language")], body=b"v")
    node, _, _ = await make_edge(node_factory, origin)
    url = node_url(node, "/v")
    await client.get(url, headers={"accept-language": "en"})
    r = await client.get(url, headers={"accept-language": "EN"})
    assert r.headers["x-cache"] == "HIT"
    r = await client.get(url, headers={"accept-language": "de"})
    assert r.headers["x-cache"] == "MISS"
    assert origin.count("/v") == 2


async def test_revalidation_304_updates_stored_headers(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/r", headers=[("cache-control", "max-age=10"), ("x-version", "1")], body=b"body", etag='"v1"',
               not_modified_headers=[("cache-control", "max-age=10"), ("x-version", "2")])
    node, _, clock = await make_edge(node_factory, origin)
    url = node_url(node, "/r")
    assert (await client.get(url)).headers["x-cache"] == "MISS"
    clock.advance(20)
    r = await client.get(url)
    assert r.headers["x-cache"] == "REVALIDATED" and r.content == b"body" and r.headers["x-version"] == "2"
    assert origin.seen[-1].headers.get("if-none-match") == '"v1"'
    r = await client.get(url)
    assert r.headers["x-cache"] == "HIT" and origin.count("/r") == 2


async def test_conditional_and_range_requests_served_from_cache(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    data = bytes(range(256)) * 4000  # 1 MB: disk tier
    origin.set("/seg.ts", headers=MAXAGE, body=data, etag='"s"')
    origin.set("/small", headers=MAXAGE, body=b"0123456789", etag='"m"')
    node, _, _ = await make_edge(node_factory, origin)
    # a range on a miss is cut from the whole object being fetched
    r = await client.get(node_url(node, "/seg.ts"), headers={"range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    await asyncio.sleep(0.1)
    r = await client.get(node_url(node, "/seg.ts"), headers={"range": "bytes=-100"})
    assert r.status_code == 206 and r.content == data[-100:] and r.headers["x-cache"] == "HIT"
    r = await client.get(node_url(node, "/seg.ts"), headers={"range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    r = await client.get(node_url(node, "/seg.ts"), headers={"if-none-match": '"s"'})
    assert r.status_code == 304 and r.headers["x-cache"] == "HIT"
    await client.get(node_url(node, "/small"))
    r = await client.get(node_url(node, "/small"), headers={"range": "bytes=2-4"})
    assert r.status_code == 206 and r.content == b"234"
    assert origin.count("/seg.ts") == 1 and origin.count("/small") == 1


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/swr", headers=[("cache-control", "max-age=10, stale-while-revalidate=60")], body=b"old", etag='"1"')
    node, edge, clock = await make_edge(node_factory, origin)
    url = node_url(node, "/swr")
    await client.get(url)
    origin.set("/swr", headers=[("cache-control", "max-age=10, stale-while-revalidate=60")], body=b"new", etag='"2"')
    clock.advance(15)
    r = await client.get(url)
    assert r.headers["x-cache"] == "STALE" and r.content == b"old"
    await until(lambda: not (origin.count("/swr") < 2 or edge.inflight), within=5)
    r = await client.get(url)
    assert r.headers["x-cache"] == "HIT" and r.content == b"new"
    assert origin.count("/swr") == 2


async def test_origin_down_fresh_and_stale_if_error_served_else_502(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/fresh", headers=[("cache-control", "max-age=600")], body=b"fresh")
    origin.set("/sie", headers=[("cache-control", "max-age=10, stale-if-error=600")], body=b"sie", etag='"e"')
    origin.set("/strict", headers=[("cache-control", "max-age=10")], body=b"strict", etag='"t"')
    node, _, clock = await make_edge(node_factory, origin)
    for path in ("/fresh", "/sie", "/strict"):
        await client.get(node_url(node, path))
    await origin.stop()
    clock.advance(30)
    r = await client.get(node_url(node, "/fresh"))
    assert r.status_code == 200 and r.headers["x-cache"] == "HIT"
    r = await client.get(node_url(node, "/sie"))
    assert r.status_code == 200 and r.content == b"sie" and r.headers["x-cache"] == "STALE"
    r = await client.get(node_url(node, "/strict"))
    assert r.status_code == 502 and b"origin is unreachable" in r.content
    r = await client.get(node_url(node, "/never-seen"))
    assert r.status_code == 502 and b"Bad Gateway" in r.content


async def test_slow_origin_times_out_with_504(node_factory: NodeFactory, origin: ScriptedOrigin,
                                              client: httpx.AsyncClient) -> None:
    origin.set("/slow", headers=MAXAGE, body=b"late", delay=5.0)
    node, _, _ = await make_edge(node_factory, origin, upstream_timeout=0.5)
    r = await client.get(node_url(node, "/slow"))
    assert r.status_code == 504 and b"did not answer in time" in r.content


async def test_unsafe_method_passes_through_and_invalidates(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/item", headers=MAXAGE, body=b"v1")
    node, _, _ = await make_edge(node_factory, origin)
    url = node_url(node, "/item")
    await client.get(url)
    assert (await client.get(url)).headers["x-cache"] == "HIT"
    r = await client.post(url, content=b"update")
    assert r.status_code == 200 and r.headers["x-cache"] == "PASS" and origin.seen[-1].body == b"update"
    assert (await client.get(url)).headers["x-cache"] == "MISS"


async def test_api_passes_through_untouched(node_factory: NodeFactory, origin: ScriptedOrigin,
                                            client: httpx.AsyncClient) -> None:
    origin.set("/api/v1/thing", headers=[("cache-control", "max-age=60"), ("x-api", "yes")], body=b'{"a":1}')
    node, _, _ = await make_edge(node_factory, origin)
    for _ in range(2):
        r = await client.get(node_url(node, "/api/v1/thing?x=1"), headers={"authorization": "Bearer t"})
        assert r.headers["x-api"] == "yes" and r.headers["x-cache"] == "PASS"
    assert origin.count("/api/v1/thing?x=1") == 2
    assert origin.seen[-1].headers["authorization"] == "Bearer t"


async def test_websocket_style_upgrade_is_spliced_to_origin(node_factory: NodeFactory, origin: ScriptedOrigin) -> None:
    node, _, _ = await make_edge(node_factory, origin)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"])
    writer.write(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(b"ping-through-edge")
        got = b""
        while len(got) < 17:
            got += await reader.read(100)
    assert got == b"ping-through-edge"
    writer.close()


async def test_coalescing_500_clients_one_origin_request(node_factory: NodeFactory, origin: ScriptedOrigin) -> None:
    import aiohttp

    body = bytes(range(256)) * (5 * 4096)  # 5 MiB
    origin.set("/cold.ts", headers=MAXAGE, body=body, delay=0.5, chunk=256 * 1024, chunk_delay=0.01)
    node, edge, _ = await make_edge(node_factory, origin, upstream_timeout=30.0)
    url = node_url(node, "/cold.ts")
    want = digest(body)

    async def fetch(session: aiohttp.ClientSession) -> tuple[int, str]:
        async with session.get(url) as r:
            return r.status, digest(await r.read())

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        results = await asyncio.gather(*(fetch(session) for _ in range(500)))
    assert origin.count("/cold.ts") == 1
    assert all(status == 200 and got == want for status, got in results)
    assert edge.stats.coalesced + edge.stats.misses + edge.stats.hits == 500
    assert edge.stats.coalesced > 0


async def test_client_leaving_does_not_cancel_the_fetch(node_factory: NodeFactory, origin: ScriptedOrigin,
                                                        client: httpx.AsyncClient) -> None:
    body = b"z" * (2 * 1024 * 1024)
    origin.set("/leave.ts", headers=MAXAGE, body=body, chunk=64 * 1024, chunk_delay=0.01)
    node, edge, _ = await make_edge(node_factory, origin)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"])
    writer.write(b"GET /leave.ts HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read(1000)
    writer.close()
    await until(lambda: not (edge.inflight), within=10)
    r = await client.get(node_url(node, "/leave.ts"))
    assert r.headers["x-cache"] == "HIT" and r.content == body and origin.count("/leave.ts") == 1


async def test_disk_full_serves_uncached_without_corruption(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    import errno

    body = bytes(range(256)) * 4096  # 1 MiB, over the tiny budget
    origin.set("/big.ts", headers=MAXAGE, body=body)
    origin.set("/mid.ts", headers=MAXAGE, body=body[:300_000])
    node, edge, _ = await make_edge(node_factory, origin, cache_size=64 * 1024)
    for _ in range(2):
        r = await client.get(node_url(node, "/big.ts"))
        assert r.status_code == 200 and r.content == body
    assert origin.count("/big.ts") == 2
    assert edge.store.disk.used <= 64 * 1024

    def enospc(fd: int, data: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    edge.store.disk.budget = 10 * 1024 * 1024
    edge.store._write = enospc  # type: ignore[method-assign]
    for _ in range(2):
        r = await client.get(node_url(node, "/mid.ts"))
        assert r.status_code == 200 and r.content == body[:300_000]
    assert origin.count("/mid.ts") == 2
    assert edge.store.disk.reserved == 0


async def test_cache_survives_restart(node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient,
                                      tmp_path: Any) -> None:
    body = b"s" * 400_000
    origin.set("/keep.ts", headers=MAXAGE, body=body)
    cache_dir = tmp_path / "edge-cache"
    node, edge, _ = await make_edge(node_factory, origin, cache_dir=str(cache_dir))
    await client.get(node_url(node, "/keep.ts"))
    await until(lambda: not (edge.inflight), within=5)
    await node.stop()
    node2, _, _ = await make_edge(node_factory, origin, cache_dir=str(cache_dir))
    r = await client.get(node_url(node2, "/keep.ts"))
    assert r.headers["x-cache"] == "HIT" and r.content == body and origin.count("/keep.ts") == 1


async def test_purge_by_url_prefix_and_tag(node_factory: NodeFactory, origin: ScriptedOrigin,
                                           client: httpx.AsyncClient) -> None:
    origin.set("/p/a", headers=[*MAXAGE, ("surrogate-key", "show1 ep1")], body=b"a")
    origin.set("/p/b", headers=[*MAXAGE, ("cache-tag", "show2")], body=b"b")
    origin.set("/q/c", headers=MAXAGE, body=b"c")
    node, edge, _ = await make_edge(node_factory, origin)

    async def fill() -> None:
        for path in ("/p/a", "/p/b", "/q/c"):
            await client.get(node_url(node, path))

    async def cached(path: str) -> bool:
        return (await client.get(node_url(node, path))).headers["x-cache"] == "HIT"

    await fill()
    node.bus.publish("cdn.purge", {"id": "1", "kind": "tag", "values": ["ep1"]})
    await asyncio.sleep(0.05)
    assert not await cached("/p/a") and await cached("/p/b")
    node.bus.publish("cdn.purge", {"id": "2", "kind": "prefix", "values": ["/p/"]})
    await asyncio.sleep(0.05)
    assert not await cached("/p/b") and await cached("/q/c")
    node.bus.publish("cdn.purge", {"id": "3", "kind": "url", "values": ["http://edge.example/q/c"]})
    await asyncio.sleep(0.05)
    assert not await cached("/q/c")
    assert edge.stats.purged >= 3


async def test_prefetch_and_live_playlist_prefetch(node_factory: NodeFactory, origin: ScriptedOrigin,
                                                   client: httpx.AsyncClient) -> None:
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg1.ts\n#EXTINF:2,\nseg2.ts\n"
    origin.set("/live/s/index.m3u8", headers=[("cache-control", "max-age=1"),
                                               ("content-type", "application/vnd.apple.mpegurl")], body=playlist)
    for name in ("seg1", "seg2", "extra"):
        origin.set(f"/live/s/{name}.ts", headers=MAXAGE, body=name.encode() * 100)
    node, edge, _ = await make_edge(node_factory, origin)
    await client.get(node_url(node, "/live/s/index.m3u8"))
    await until(lambda: not (origin.count("/live/s/seg2.ts") < 1 or edge.inflight), within=5)
    r = await client.get(node_url(node, "/live/s/seg1.ts"))
    assert r.headers["x-cache"] == "HIT" and origin.count("/live/s/seg1.ts") == 1
    node.bus.publish("cdn.prefetch", {"id": "p", "urls": ["/live/s/extra.ts"]})
    await until(lambda: not (origin.count("/live/s/extra.ts") < 1 or edge.inflight), within=5)
    assert (await client.get(node_url(node, "/live/s/extra.ts"))).headers["x-cache"] == "HIT"


async def test_only_if_cached_and_metrics(node_factory: NodeFactory, origin: ScriptedOrigin,
                                          client: httpx.AsyncClient) -> None:
    origin.set("/m", headers=MAXAGE, body=b"m" * 10)
    node, _, _ = await make_edge(node_factory, origin)
    r = await client.get(node_url(node, "/m"), headers={"cache-control": "only-if-cached"})
    assert r.status_code == 504
    await client.get(node_url(node, "/m"))
    await client.get(node_url(node, "/m"))
    stats = (await client.get(node_url(node, "/cdn/v1/stats"))).json()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["hit_ratio"] == 0.5
    text = (await client.get(node_url(node, "/metrics"))).text
    assert 'hivecast_cdn_responses_total{result="hit"} 1.0' in text and "hivecast_cdn_origin_offload" in text


# ---- bad input: the front door's limits protect the edge and its other clients ----
def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


async def test_malformed_and_oversized_requests_are_rejected(node_factory: NodeFactory, origin: ScriptedOrigin,
                                                             client: httpx.AsyncClient) -> None:
    origin.set("/ok", headers=MAXAGE, body=b"ok")
    node, _, _ = await make_edge(node_factory, origin)
    port = node.services["http_port"]
    assert (await asyncio.to_thread(_raw, port, b"GARBAGE \x00\x01\r\n\r\n")).startswith(b"HTTP/1.1 400")
    flood = b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n"
    assert (await asyncio.to_thread(_raw, port, flood)).startswith(b"HTTP/1.1 431")
    huge = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    assert (await asyncio.to_thread(_raw, port, huge)).startswith(b"HTTP/1.1 431")
    r = await client.get(node_url(node, "/ok"))
    assert r.status_code == 200 and origin.count("/ok") == 1


@pytest.mark.slow
async def test_slowloris_is_cut_off_while_others_are_served(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/ok", headers=MAXAGE, body=b"ok")
    node = await node_factory("edge", origin_url=origin.url, limits={"header_timeout": 1.0},
                              cdn={"heartbeat_interval": 30.0})
    port = node.services["http_port"]
    slow = []
    for _ in range(20):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        slow.append((r, w))
    for _ in range(3):
        for _, w in slow:
            if not w.is_closing():
                w.write(b"X-Drip: 1\r\n")
        got = await client.get(node_url(node, "/ok"))
        assert got.status_code == 200
        await asyncio.sleep(0.5)
    async with asyncio.timeout(10):
        for r, _ in slow:
            try:
                answer = await r.read()
            except ConnectionError:
                answer = b""  # reset: we kept writing after the edge closed on us
            assert answer.startswith(b"HTTP/1.1 408") or answer == b""
    for _, w in slow:
        w.close()


async def test_parent_tier_shields_the_origin(node_factory: NodeFactory, origin: ScriptedOrigin,
                                              client: httpx.AsyncClient) -> None:
    origin.set("/t/seg.ts", headers=MAXAGE, body=b"tiered" * 1000)
    origin.set("/api/x", headers=[("cache-control", "no-store")], body=b"api")
    parent, _, _ = await make_edge(node_factory, origin)
    children = [await node_factory("edge", origin_url=origin.url, parent_url=node_url(parent),
                                   cdn={"heartbeat_interval": 30.0}) for _ in range(2)]
    for child in children:
        r = await client.get(node_url(child, "/t/seg.ts"))
        assert r.status_code == 200 and r.content == b"tiered" * 1000 and r.headers["x-cache"] == "MISS"
    assert origin.count("/t/seg.ts") == 1  # the second child's miss was a hit on the parent
    assert "hivecast" in origin.seen[-1].headers.get("via", "")
    r = await client.get(node_url(children[0], "/api/x"))
    assert r.content == b"api" and "via" in origin.seen[-1].headers
    # the API goes straight to the origin, not through the parent
    assert origin.seen[-1].headers["via"].count("hivecast") == 1


async def test_fast_path_uses_zero_copy_for_disk_hits_and_sync_path_for_memory(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: disk tier, sent with os.sendfile
    origin.set("/z/big.ts", headers=MAXAGE, body=big)
    origin.set("/z/small.m3u8", headers=MAXAGE, body=b"#EXTM3U\n")
    node, edge, _ = await make_edge(node_factory, origin)
    for _ in range(3):
        assert (await client.get(node_url(node, "/z/big.ts"))).content == big
        assert (await client.get(node_url(node, "/z/small.m3u8"))).content == b"#EXTM3U\n"
    server = next(c.server for c in node.components if getattr(c, "server", None) is not None)
    assert server._os_sendfile_ok  # no fallback to copying
    assert edge.stats.hits >= 4


async def test_age_from_upstream_is_passed_on_a_miss(node_factory: NodeFactory, origin: ScriptedOrigin,
                                                     client: httpx.AsyncClient) -> None:
    origin.set("/aged", headers=[("cache-control", "max-age=60"), ("age", "30")], body=b"a")
    node, _, clock = await make_edge(node_factory, origin)
    r = await client.get(node_url(node, "/aged"))
    assert r.headers["x-cache"] == "MISS" and int(r.headers["age"]) >= 30
    clock.advance(20)
    r = await client.get(node_url(node, "/aged"))
    assert r.headers["x-cache"] == "HIT" and int(r.headers["age"]) >= 50
    clock.advance(20)  # 30 + 40 > 60: stale now
    r = await client.get(node_url(node, "/aged"))
    assert r.headers["x-cache"] == "MISS" and origin.count("/aged") == 2


async def test_large_cold_object_keeps_memory_bounded_for_slow_and_late_readers(
        node_factory: NodeFactory, origin: ScriptedOrigin) -> None:
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB
    origin.set("/huge.mp4", headers=MAXAGE, body=body, chunk=256 * 1024, chunk_delay=0.005)
    node, edge, _ = await make_edge(node_factory, origin)
    edge.config.fetch_buffer = 1024 * 1024
    url = node_url(node, "/huge.mp4")
    held: list[int] = []

    async def watch() -> None:
        while True:
            for f in list(edge.inflight.values()):
                held.append(f.size - f.floor)
            await asyncio.sleep(0.005)

    async def slow_reader() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"])
        writer.write(b"GET /huge.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(1.0)  # the fetch runs ahead of us
        data = await reader.read()
        writer.close()
        return data.split(b"\r\n\r\n", 1)[1]

    watcher = asyncio.ensure_future(watch())
    try:
        async with httpx.AsyncClient(timeout=30) as c:
            results = await asyncio.gather(slow_reader(), *(c.get(url) for _ in range(5)))
            late = await c.get(url, headers={"range": "bytes=100-199"})
    finally:
        watcher.cancel()
    assert results[0] == body
    assert all(r.content == body for r in results[1:])
    assert late.status_code == 206 and late.content == body[100:200]
    assert origin.count("/huge.mp4") == 1
    assert held and max(held) <= 1024 * 1024 + 256 * 1024


async def test_purge_during_a_fetch_is_not_undone_by_its_commit(
        node_factory: NodeFactory, origin: ScriptedOrigin, client: httpx.AsyncClient) -> None:
    origin.set("/racy.ts", headers=[*MAXAGE, ("cache-tag", "racy")], body=b"old" * 100_000, chunk=64 * 1024,
               chunk_delay=0.05)
    node, edge, _ = await make_edge(node_factory, origin)
    first = asyncio.ensure_future(client.get(node_url(node, "/racy.ts")))
    await until(lambda: bool(edge.inflight))
    node.bus.publish("cdn.purge", {"id": "p", "kind": "tag", "values": ["racy"]})
    await until(lambda: not edge.inflight)
    assert (await first).content == b"old" * 100_000  # the client that was already streaming is not cut off
    origin.set("/racy.ts", headers=MAXAGE, body=b"new")
    r = await client.get(node_url(node, "/racy.ts"))
    assert r.content == b"new" and r.headers["x-cache"] == "MISS"


async def test_abandoned_uncacheable_download_stops(node_factory: NodeFactory, origin: ScriptedOrigin) -> None:
    origin.set("/private.bin", headers=[("cache-control", "private")], body=b"p" * (4 * 1024 * 1024),
               chunk=64 * 1024, chunk_delay=0.02)
    node, edge, _ = await make_edge(node_factory, origin)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"])
    writer.write(b"GET /private.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read(70_000)
    writer.close()
    await until(lambda: not edge.inflight, within=5)
    assert edge.stats.bytes_from_origin < 4 * 1024 * 1024


async def test_far_seek_on_a_cold_object_is_fetched_as_a_range(node_factory: NodeFactory,
                                                               client: httpx.AsyncClient) -> None:
    # The origin here is a real hivecast origin node (StaticFiles answers ranges).
    origin_node = await node_factory("origin")
    media = origin_node.settings.media_dir / "vod" / "film"
    media.mkdir(parents=True)
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    (media / "film.mp4").write_bytes(data)
    edge = await node_factory("edge", origin_url=node_url(origin_node), cdn={"heartbeat_interval": 30.0})
    cache: EdgeCache = edge.services["edge_cache"]
    cache.config.range_ahead = 1024 * 1024
    r = await client.get(node_url(edge, "/vod/film/film.mp4"), headers={"range": "bytes=12000000-12000099"})
    assert r.status_code == 206 and r.content == data[12_000_000:12_000_100]
    assert r.headers["x-cache"] in ("MISS-RANGE", "MISS")
    await until(lambda: not cache.inflight, within=20)
    r = await client.get(node_url(edge, "/vod/film/film.mp4"), headers={"range": "bytes=15000000-15000009"})
    assert r.status_code == 206 and r.content == data[15_000_000:15_000_010] and r.headers["x-cache"] == "HIT"
