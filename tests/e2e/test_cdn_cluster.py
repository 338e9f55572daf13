"""The cluster: edges register with the origin, heartbeat, get purges from it, and the routers
(DNS and HTTP 302) name only healthy, non-draining edges of the client's region."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dnslib import DNSRecord, EDNSOption

from hivecast.cdn.dns_router import DnsResponder, DnsRouter, EdgeDirectory
from hivecast.cdn.registry import EdgeRegistry
from hivecast.cdn.selection import RegionMap
from hivecast.net.errors import AddressInUse
from hivecast.node import Node
from tests.conftest import NodeFactory, free_port, free_udp_and_tcp_port, node_url
from tests.e2e.cdn_support import ScriptedOrigin, running_origin, until

FAST = {"heartbeat_interval": 0.3, "health_interval": 0.5}

@pytest.fixture
async def origin() -> AsyncIterator[ScriptedOrigin]:
    async with running_origin() as o:
        yield o



async def make_cluster(node_factory: NodeFactory, tmp_path: Path) -> tuple[Node, Node, EdgeRegistry]:
    origin = await node_factory("origin", cdn=FAST)
    edge = await node_factory("edge", origin_url=node_url(origin), cdn={**FAST, "region": "eu"})
    registry: EdgeRegistry = origin.services["edge_registry"]
    await until(lambda: any(e["healthy"] for e in registry.list_edges()))
    return origin, edge, registry


async def test_edge_registers_heartbeats_and_gets_purges_from_origin(node_factory: NodeFactory, tmp_path: Path) -> None:
    origin, edge, registry = await make_cluster(node_factory, tmp_path)
    (origin.settings.media_dir / "vod" / "m").mkdir(parents=True)
    (origin.settings.media_dir / "vod" / "m" / "seg.ts").write_bytes(b"t" * 5000)
    edges = registry.list_edges()
    assert edges[0]["region"] == "eu" and set(edges[0]["load"]) == {"connections", "bandwidth_bps", "cpu"}
    async with httpx.AsyncClient(timeout=10) as c:
        url = node_url(edge, "/vod/m/seg.ts")
        assert (await c.get(url)).headers["x-cache"] == "MISS"
        assert (await c.get(url)).headers["x-cache"] == "HIT"
        agent = edge.services["edge_agent"]
        before = agent.events_applied
        origin.bus.publish("cdn.purge", {"id": "x", "kind": "prefix", "values": ["/vod/m/"]})
        await until(lambda: agent.events_applied > before)
        assert (await c.get(url)).headers["x-cache"] == "MISS"
        # the HTTP 302 router on the origin sends clients to the edge
        r = await c.get(node_url(origin, "/cdn/v1/redirect/vod/m/seg.ts"))
        assert r.status_code == 302 and r.headers["location"] == node_url(edge, "/vod/m/seg.ts")
        assert registry.set_draining(edges[0]["id"], True)
        r = await c.get(node_url(origin, "/cdn/v1/redirect/vod/m/seg.ts"))
        assert r.status_code == 503


async def test_origin_notices_a_dead_edge(node_factory: NodeFactory, tmp_path: Path) -> None:
    _, edge, registry = await make_cluster(node_factory, tmp_path)
    await edge.stop()
    await until(lambda: not any(e["healthy"] for e in registry.list_edges()))


def ecs_query(name: str, subnet: str, prefix: int) -> DNSRecord:
    q = DNSRecord.question(name, "A")
    addr = bytes(int(p) for p in subnet.split("."))[: (prefix + 7) // 8]
    q.add_ar(__import__("dnslib").EDNS0(udp_len=1232, opts=[EDNSOption(8, struct.pack("!HBB", 1, prefix, 0) + addr)]))
    return q


def edges_for(port_a: int, port_b: int) -> list[dict[str, Any]]:
    return [
        {"id": "eu1", "url": f"http://127.0.0.1:{port_a}", "region": "eu", "healthy": True, "draining": False},
        {"id": "us1", "url": f"http://127.0.0.2:{port_b}", "region": "us", "healthy": True, "draining": False},
    ]


def test_dns_responder_region_ecs_drain_and_refusal() -> None:
    responder = DnsResponder("cdn.example.", regions=RegionMap.from_config({"10.0.0.0/8": "eu", "192.0.2.0/24": "us"}),
                             ttl=5)
    edges = edges_for(1, 2)

    def ask(q: DNSRecord, client: str = "127.0.0.1", e: list[dict[str, Any]] = edges) -> DNSRecord:
        reply = responder.answer(q.pack(), client, e)
        assert reply is not None
        return DNSRecord.parse(reply)

    r = ask(ecs_query("cdn.example.", "192.0.2.0", 24))
    assert [str(rr.rdata) for rr in r.rr] == ["127.0.0.2"] and r.rr[0].ttl == 5 and r.header.aa
    assert any(getattr(o, "code", None) == 8 for o in r.ar[0].rdata)  # ECS echoed
    r = ask(DNSRecord.question("www.cdn.example.", "A"), client="10.1.2.3")
    assert [str(rr.rdata) for rr in r.rr] == ["127.0.0.1"]
    drained = [dict(edges[0], draining=True), edges[1]]
    r = ask(DNSRecord.question("cdn.example.", "A"), client="10.1.2.3", e=drained)
    assert [str(rr.rdata) for rr in r.rr] == ["127.0.0.2"]  # out of region rather than a drained edge
    dead = [dict(e, healthy=False) for e in edges]
    r = ask(DNSRecord.question("cdn.example.", "A"), e=dead)
    assert r.rr == [] and r.auth  # NODATA with the SOA
    r = ask(DNSRecord.question("other.example.", "A"))
    assert r.header.rcode == 5  # REFUSED: not our zone
    assert ask(DNSRecord.question("cdn.example.", "AAAA")).rr == []


async def test_dns_router_over_udp_stops_naming_a_killed_edge(node_factory: NodeFactory, origin: ScriptedOrigin) -> None:
    edge_a = await node_factory("edge", origin_url=origin.url, cdn={"heartbeat_interval": 30.0})
    port_b = free_port()
    edge_b = await node_factory("edge", origin_url=origin.url, http_port=port_b, cdn={"heartbeat_interval": 30.0})
    static = [
        {"id": "a", "url": node_url(edge_a), "region": "eu"},
        {"id": "b", "url": f"http://127.0.0.1:{port_b}", "region": "eu"},
    ]
    directory = EdgeDirectory(static=static, health_interval=0.5)
    router = DnsRouter(DnsResponder("cdn.example.", regions=RegionMap.from_config({"127.0.0.0/8": "eu"})),
                       directory.edges)
    await router.start("127.0.0.1", 0)
    task = asyncio.get_running_loop().create_task(directory.run())
    try:
        await until(lambda: all(e["healthy"] for e in directory.edges()))

        async def resolve() -> list[str]:
            reply = await asyncio.to_thread(DNSRecord.question("cdn.example.", "A").send, "127.0.0.1", router.port,
                                            timeout=2)
            return [str(rr.rdata) for rr in DNSRecord.parse(reply).rr]

        assert await resolve() == ["127.0.0.1"]
        tcp_reply = await asyncio.to_thread(DNSRecord.question("cdn.example.", "A").send, "127.0.0.1", router.port,
                                            tcp=True, timeout=2)
        assert [str(rr.rdata) for rr in DNSRecord.parse(tcp_reply).rr] == ["127.0.0.1"]
        await edge_b.stop()
        await until(lambda: [e["id"] for e in directory.edges() if e["healthy"]] == ["a"])
        assert await resolve() == ["127.0.0.1"]
        await edge_a.stop()
        await until(lambda: not any(e["healthy"] for e in directory.edges()))
        assert await resolve() == []
    finally:
        task.cancel()
        await router.aclose()
        await directory.close()


@pytest.mark.interop
def test_dig_against_router_process(tmp_path: Path) -> None:
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig (dnsutils) is not installed; scripts/provision.sh installs it")
    port = free_udp_and_tcp_port()
    health = free_port()
    dead = free_port()  # nothing listens here: us1 fails every health check
    # a static edge that answers /healthz: a tiny http.server process
    srv = subprocess.Popen([sys.executable, "-c",
                            "import http.server as h\n"
                            "class H(h.BaseHTTPRequestHandler):\n"
                            "  def do_GET(s):\n"
                            "    s.send_response(200); s.send_header('content-length','2'); s.end_headers(); s.wfile.write(b'ok')\n"
                            "  def log_message(s,*a): pass\n"
                            f"h.HTTPServer(('127.0.0.1',{health}),H).serve_forever()\n"])
    config = tmp_path / "router.toml"
    config.write_text('[cdn]\nhealth_interval = 0.5\ndns_ttl = 5\n[cdn.regions]\n"10.0.0.0/8" = "eu"\n')
    router = subprocess.Popen([sys.executable, "-m", "hivecast", "router", "--config", str(config), "--dns-port",
                               str(port), "--zone", "cdn.example.", "--edge", f"eu1=http://127.0.0.1:{health}@eu",
                               "--edge", f"us1=http://127.0.0.1:{dead}@us", "--region-map", "192.0.2.0/24=us"])
    try:
        def dig_a(*extra: str) -> str:
            deadline = 20
            out = ""
            for _ in range(deadline * 4):
                out = subprocess.run([dig, "@127.0.0.1", "-p", str(port), "cdn.example.", "A", "+short", "+time=1",
                                      "+tries=1", *extra], capture_output=True, text=True, timeout=10).stdout.strip()
                if out and ";;" not in out:
                    return out
                subprocess.run(["sleep", "0.25"], check=False)
            return out

        assert dig_a("+subnet=10.1.0.0/16") == "127.0.0.1"
        # us1 never answers its health check, so the us network gets the healthy eu edge
        assert dig_a("+subnet=192.0.2.0/24") == "127.0.0.1"
        assert dig_a("+tcp") == "127.0.0.1"
    finally:
        router.terminate()
        srv.terminate()
        router.wait(timeout=10)
        srv.wait(timeout=10)



async def test_cluster_key_guards_edge_calls(node_factory: NodeFactory) -> None:
    key = "k" * 32
    origin_node = await node_factory("origin", cdn={**FAST, "cluster_key": key})
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.post(node_url(origin_node, "/cdn/v1/edges"), json={"id": "x", "url": "http://127.0.0.1:1"})
        assert r.status_code == 401
    edge = await node_factory("edge", origin_url=node_url(origin_node), cdn={**FAST, "cluster_key": key})
    registry: EdgeRegistry = origin_node.services["edge_registry"]
    await until(lambda: len(registry.list_edges()) == 1)
    assert registry.list_edges()[0]["url"] == node_url(edge)


async def test_router_reads_origin_registry_and_skips_drained_edges(node_factory: NodeFactory, tmp_path: Path) -> None:
    origin_node, edge, registry = await make_cluster(node_factory, tmp_path)
    directory = EdgeDirectory(origin_url=node_url(origin_node), health_interval=0.5)
    responder = DnsResponder("cdn.example.", regions=RegionMap.from_config({"127.0.0.0/8": "eu"}))

    def answer() -> list[str]:
        reply = responder.answer(DNSRecord.question("cdn.example.", "A").pack(), "127.0.0.1", directory.edges())
        assert reply is not None
        return [str(rr.rdata) for rr in DNSRecord.parse(reply).rr]

    try:
        await directory.refresh()
        assert answer() == ["127.0.0.1"]
        edge_id = registry.list_edges()[0]["id"]
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.post(node_url(origin_node, f"/cdn/v1/edges/{edge_id}/drain"), json={"draining": True})
            assert r.status_code == 200
        await directory.refresh()
        assert answer() == []
        registry.set_draining(edge_id, False)
        await directory.refresh()
        assert answer() == ["127.0.0.1"]
        await edge.stop()
        await directory.refresh()
        assert answer() == []
    finally:
        await directory.close()


async def test_dns_router_on_a_set_port_whose_tcp_side_is_taken_fails_and_frees_udp() -> None:
    port = free_udp_and_tcp_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        router = DnsRouter(DnsResponder("cdn.example.", regions=RegionMap.from_config({})), list)
        with pytest.raises(AddressInUse):
            await router.start("127.0.0.1", port)
    await asyncio.sleep(0.05)  # a transport closes its socket on a later turn of the loop
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))  # the router's UDP socket was closed again
