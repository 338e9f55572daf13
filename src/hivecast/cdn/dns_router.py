"""An authoritative DNS server for the CDN zone: A/AAAA answers naming the best edge for the
client's network (EDNS Client Subnet, RFC 7871, when present; the resolver's address otherwise).

`DnsResponder.answer()` is the sans-I/O core (query bytes, client address and edges in; reply
bytes out); `DnsRouter` binds it to a UDP socket; `EdgeDirectory` keeps the edge list fresh from
the origin and health-checks each edge itself, so a dead edge drops out within one interval.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, SOA, A, DNSError, DNSLabel, DNSRecord, EDNSOption

from hivecast.cdn.registry import probe
from hivecast.cdn.selection import RegionMap, choose
from hivecast.cdn.upstream import UpstreamLimits, UpstreamPool
from hivecast.net import Connection, ConnectionLimits, TcpServer, open_udp
from hivecast.net.errors import AddressInUse, NetError
from hivecast.net.udp import UdpEndpoint

log = logging.getLogger(__name__)

MAX_QUERY = 4096
ECS_CODE = 8
_PORT_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    family: int
    source_prefix: int
    address: str

    def encode(self, scope: int) -> bytes:
        ip = ipaddress.ip_address(self.address)
        nbytes = (self.source_prefix + 7) // 8
        return (self.family.to_bytes(2, "big") + bytes([self.source_prefix, scope])
                + ip.packed[:nbytes])


def parse_ecs(data: bytes) -> ClientSubnet | None:
    """The CLIENT-SUBNET option payload (RFC 7871 6); None if malformed."""
    if len(data) < 4:
        return None
    family = int.from_bytes(data[:2], "big")
    source = data[2]
    addr = data[4:]
    if family == 1:
        width = 4
    elif family == 2:
        width = 16
    else:
        return None
    if source > width * 8 or len(addr) != (source + 7) // 8:
        return None
    packed = addr + bytes(width - len(addr))
    ip = ipaddress.ip_address(packed)
    return ClientSubnet(family, source, str(ip))


def _host_of(url: str) -> str | None:
    host = urlsplit(url).hostname
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class DnsResponder:
    def __init__(self, zone: str, *, regions: RegionMap, ttl: int = 10, answers: int = 1) -> None:
        self.zone = DNSLabel(zone if zone.endswith(".") else zone + ".")
        self.regions = regions
        self.ttl = ttl
        self.answers = answers
        self.queries = 0
        self.malformed = 0

    def _soa(self) -> RR:
        return RR(self.zone, QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            DNSLabel(f"ns.{self.zone}"), DNSLabel(f"hostmaster.{self.zone}"),
            (int(time.time()) & 0xFFFFFFFF, 60, 30, 86400, self.ttl)))

    def answer(self, data: bytes, client: str, edges: Sequence[Mapping[str, Any]]) -> bytes | None:
        """The reply to one query packet; None to drop it (unparsable beyond a header)."""
        self.queries += 1
        if len(data) > MAX_QUERY:
            self.malformed += 1
            return None
        try:
            query = DNSRecord.parse(data)
        except (DNSError, Exception):
            self.malformed += 1
            return None
        if query.header.qr or query.header.opcode != 0 or len(query.questions) != 1:
            reply = query.reply()
            reply.header.rcode = RCODE.FORMERR if query.header.opcode == 0 else RCODE.NOTIMP
            return bytes(reply.pack())
        reply = query.reply()  # sets QR, AA and RD as asked
        reply.header.ra = 0
        reply.header.ad = 0  # we do not validate DNSSEC
        q = query.q
        if not (q.qname == self.zone or q.qname.matchSuffix(self.zone)):
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return bytes(reply.pack())
        ecs: ClientSubnet | None = None
        edns: EDNS0 | None = None
        for rr in query.ar:
            if rr.rtype == QTYPE.OPT:
                edns = rr
                for opt in rr.rdata or []:
                    if getattr(opt, "code", None) == ECS_CODE:
                        ecs = parse_ecs(bytes(opt.data))
        client_ip = ecs.address if ecs is not None else client
        region = self.regions.region_of(client_ip)
        if q.qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.ANY):
            want_v6 = q.qtype == QTYPE.AAAA
            usable = []
            for edge in edges:
                host = _host_of(str(edge.get("url", "")))
                if host is None or (":" in host) != want_v6:
                    continue
                usable.append({**edge, "_host": host})
            subnet_key = _subnet_key(client_ip)
            for edge in choose(usable, region=region, key=f"{q.qname}|{subnet_key}", count=self.answers):
                rdata = AAAA(edge["_host"]) if want_v6 else A(edge["_host"])
                reply.add_answer(RR(q.qname, QTYPE.AAAA if want_v6 else QTYPE.A, ttl=self.ttl, rdata=rdata))
            if not reply.rr:
                reply.add_auth(self._soa())
        elif q.qtype == QTYPE.SOA and q.qname == self.zone:
            reply.add_answer(self._soa())
        else:
            reply.add_auth(self._soa())
        if edns is not None:
            opts = []
            if ecs is not None:
                # RFC 7871 7.2.1: echo the option; scope = how much of the address the answer used.
                opts.append(EDNSOption(ECS_CODE, ecs.encode(min(ecs.source_prefix, 24 if ecs.family == 1 else 56))))
            reply.add_ar(EDNS0(udp_len=1232, opts=opts))
        packed: bytes = reply.pack()
        return packed


def _subnet_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class EdgeDirectory:
    """Edges known to a router: static ones plus the origin's list, each health-checked here."""

    def __init__(self, *, origin_url: str | None = None, static: Sequence[Mapping[str, Any]] = (),
                 health_interval: float = 2.0) -> None:
        self.origin_url = origin_url
        self.static = [dict(e) for e in static]
        self.health_interval = health_interval
        self._from_origin: list[dict[str, Any]] = []
        self._health: dict[str, tuple[bool, float]] = {}
        self._pools: dict[str, UpstreamPool] = {}

    def edges(self) -> list[dict[str, Any]]:
        out = []
        seen: set[str] = set()
        for edge in [*self.static, *self._from_origin]:
            eid = str(edge.get("id"))
            if eid in seen:
                continue
            seen.add(eid)
            ok, latency = self._health.get(eid, (False, 0.0))
            out.append({**edge, "healthy": ok and edge.get("healthy", True), "latency_ms": latency * 1000})
        return out

    def _pool(self, url: str) -> UpstreamPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = UpstreamPool(url, UpstreamLimits(connect_timeout=1.0, read_timeout=1.0,
                                                                       max_idle_per_host=1))
        return pool

    async def refresh(self) -> None:
        if self.origin_url is not None:
            try:
                async with asyncio.timeout(self.health_interval):
                    resp = await self._pool(self.origin_url).request("GET", "/cdn/v1/edges", [])
                    body = await resp.read_all(4 * 1024 * 1024)
                if resp.status == 200:
                    self._from_origin = list(json.loads(body)["edges"])
            except (NetError, TimeoutError, ValueError, KeyError) as exc:
                log.warning("router: cannot read edges from the origin: %s", exc)
        edges = [*self.static, *self._from_origin]
        timeout = max(0.2, self.health_interval * 0.5)
        results = await asyncio.gather(*(probe(self._pool(str(e["url"])), deadline=timeout) for e in edges))
        self._health = {str(e.get("id")): r for e, r in zip(edges, results, strict=True)}

    async def run(self) -> None:
        # Fixed rate: a check starts every interval however long the previous one took, so a dead
        # edge is noticed within one interval of its last good check.
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.refresh()
            await asyncio.sleep(max(0.0, started + self.health_interval - loop.time()))

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()


class DnsRouter:
    """UDP and TCP (RFC 7766: two-byte length prefix per message) on the same port."""

    def __init__(self, responder: DnsResponder, edges: Callable[[], Sequence[Mapping[str, Any]]]) -> None:
        self.responder = responder
        self.edges = edges
        self.endpoint: UdpEndpoint | None = None
        self.tcp: TcpServer | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on UDP and TCP at one port number; with port 0, any number free for both.

        The UDP socket picks the number, so on a busy machine TCP may find it taken by some other
        socket: with port 0 that is retried on a fresh number, with a set port it is the start error.
        """
        for attempt in range(_PORT_ATTEMPTS):
            self.endpoint = await open_udp(host, port, on_datagram=self._on_query)
            self.tcp = TcpServer(self._on_tcp, host=host, port=self.endpoint.port, name="dns-tcp",
                                 limits=ConnectionLimits(max_connections=1000, idle_timeout=10.0, read_buffer=8192))
            try:
                await self.tcp.start()
                return
            except AddressInUse:
                self.endpoint.close()
                self.endpoint, self.tcp = None, None
                if port != 0 or attempt == _PORT_ATTEMPTS - 1:
                    raise

    async def _on_tcp(self, conn: Connection) -> None:
        for _ in range(100):  # queries per connection
            try:
                prefix = await conn.readexactly(2)
            except NetError:
                return
            size = int.from_bytes(prefix, "big")
            if size == 0 or size > MAX_QUERY:
                return
            data = await conn.readexactly(size)
            host = conn.peer[0]
            reply = self.responder.answer(data, host, self.edges())
            if reply is None:
                return
            await conn.send(len(reply).to_bytes(2, "big") + reply)

    @property
    def port(self) -> int:
        assert self.endpoint is not None
        return self.endpoint.port

    def _on_query(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.responder.answer(data, addr[0], self.edges())
        if reply is not None and self.endpoint is not None:
            try:
                self.endpoint.send(reply, addr)
            except NetError as exc:
                log.debug("dns reply to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        if self.tcp is not None:
            asyncio.get_running_loop().create_task(self.tcp.close(grace=0.2))

    async def aclose(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        if self.tcp is not None:
            await self.tcp.close(grace=0.2)
