"""The DHT node core (sans-I/O): answers queries, runs lookups, keeps the routing table.

Feed it datagrams (`receive`) or decoded messages (`handle`, used by the simulator), call `tick(now)`
at `next_wakeup()`, and drain `take_datagrams()` / `take_messages()` and `take_events()`. It never
reads a clock or touches a socket, so the same code runs on UDP and in the simulator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hivecast.dht import krpc
from hivecast.dht.errors import KrpcError
from hivecast.dht.ids import ID_BITS, Address, NodeInfo, bep42_valid, random_id_in_bucket
from hivecast.dht.items import ItemError, ItemStore, MutableItem, immutable_target, mutable_target
from hivecast.dht.krpc import Error, Message, Query, Response
from hivecast.dht.lookup import Lookup
from hivecast.dht.peers import PeerStore
from hivecast.dht.ratelimit import RateLimiter
from hivecast.dht.routing import Bucket, PingNeeded, RoutingTable
from hivecast.dht.tokens import TokenManager
from hivecast.p2p.bencode import encode


@dataclass(frozen=True, slots=True)
class DhtConfig:
    k: int = 8
    alpha: int = 3
    query_timeout: float = 4.0
    slow_after: float = 1.0
    rate: float = 20.0  # queries per second per address
    burst: float = 40.0
    max_tracked_addresses: int = 4096
    max_pending: int = 2048
    max_lookups: int = 64
    refresh_interval: float = 15 * 60.0
    read_only: bool = False  # BEP 43
    enforce_bep42: bool = False  # ignore (do not route through) nodes whose id does not match their IP
    max_values: int = 50
    version: bytes | None = b"HC\x00\x01"


@dataclass(slots=True)
class LookupDone:
    lookup_id: int
    lookup: Lookup


@dataclass(slots=True)
class PingDone:
    request_id: int
    node: NodeInfo | None  # None: no answer


@dataclass(slots=True)
class BootstrapDone:
    nodes: int


Event = LookupDone | PingDone | BootstrapDone


@dataclass(slots=True)
class Pending:
    addr: Address
    method: str
    node: NodeInfo | None
    deadline: float
    lookup_id: int | None = None
    request_id: int | None = None
    purpose: str = "lookup"  # lookup | ping | bootstrap | liveness | announce
    candidate: NodeInfo | None = None


@dataclass(slots=True)
class _Running:
    lookup: Lookup
    announce_port: int | None = None
    implied_port: bool = False
    purpose: str = "user"  # user | bootstrap | refresh
    put_value: Any = None  # BEP 44: store this item at the closest nodes when the get lookup ends
    salt: bytes | None = None  # BEP 44 get of a mutable item: its salt (None: an immutable item)
    put_cas: int | None = None  # BEP 44 mutable put: only over this sequence number


@dataclass(slots=True)
class NodeStats:
    queries_in: dict[str, int] = field(default_factory=dict)
    responses_in: int = 0
    errors_in: int = 0
    malformed: int = 0
    unexpected: int = 0
    rate_limited: int = 0
    bad_tokens: int = 0
    bad_items: int = 0  # BEP 44 puts refused (signature, sequence number, CAS, sizes)
    sent: int = 0
    timeouts: int = 0


class DhtNode:
    def __init__(self, node_id: bytes, now: float, *, config: DhtConfig | None = None,
                 rng: random.Random | None = None) -> None:
        self.id = node_id
        self.config = config or DhtConfig()
        self.rng = rng or random.Random()
        self.table = RoutingTable(node_id, k=self.config.k)
        self.tokens = TokenManager(self.rng, now)
        self.peer_store = PeerStore()
        self.items = ItemStore()  # BEP 44 items held for others
        self.limiter = RateLimiter(rate=self.config.rate, burst=self.config.burst,
                                   max_tracked=self.config.max_tracked_addresses)
        self.stats = NodeStats()
        self.external_ip: Address | None = None
        self._outbox: list[tuple[Message, Address]] = []
        self._events: list[Event] = []
        self._pending: dict[bytes, Pending] = {}
        self._next_tid = self.rng.randrange(1 << 16)
        self._lookups: dict[int, _Running] = {}
        self._next_lookup = 1
        self._next_request = 1
        self._last_refresh = now
        self._bootstrapping = False

    # -- output ----------------------------------------------------------------------------------
    def take_messages(self) -> list[tuple[Message, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        return [(krpc.encode_message(m, read_only=self.config.read_only), a) for m, a in self.take_messages()]

    def take_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def _send(self, msg: Message, addr: Address) -> None:
        self.stats.sent += 1
        self._outbox.append((msg, addr))

    def _tid(self) -> bytes | None:
        if len(self._pending) >= self.config.max_pending:
            return None
        for _ in range(16):
            self._next_tid = (self._next_tid + 1) & 0xFFFF
            t = self._next_tid.to_bytes(2, "big")
            if t not in self._pending:
                return t
        return None

    def _query(self, addr: Address, method: str, now: float, *, node: NodeInfo | None = None,
               target: bytes | None = None, purpose: str = "lookup", lookup_id: int | None = None,
               request_id: int | None = None, port: int | None = None, token: bytes | None = None,
               implied_port: bool = False, candidate: NodeInfo | None = None) -> bool:
        t = self._tid()
        if t is None:
            return False
        self._pending[t] = Pending(addr, method, node, now + self.config.query_timeout, lookup_id,
                                   request_id, purpose, candidate)
        self._send(Query(t, method, self.id, target=target, port=port, token=token,
                         implied_port=implied_port, read_only=self.config.read_only,
                         version=self.config.version), addr)
        return True

    # -- input -----------------------------------------------------------------------------------
    def receive(self, data: bytes, addr: Address, now: float) -> None:
        """One datagram from `addr`. Anything malformed is counted and dropped, never raised."""
        try:
            msg = krpc.decode_message(data)
        except KrpcError:
            self.stats.malformed += 1
            tid = krpc.transaction_id_of(data)
            if tid is not None and self.limiter.allow(addr, now) and not self.config.read_only:
                self._send(Error(tid, krpc.PROTOCOL_ERROR, "malformed message"), addr)
            return
        self.handle(msg, addr, now)

    def handle(self, msg: Message, addr: Address, now: float) -> None:
        if isinstance(msg, Query):
            self._on_query(msg, addr, now)
        else:
            self._on_reply(msg, addr, now)

    def _on_query(self, q: Query, addr: Address, now: float) -> None:
        if not self.limiter.allow(addr, now):
            self.stats.rate_limited += 1
            return
        self.stats.queries_in[q.method] = self.stats.queries_in.get(q.method, 0) + 1
        if self.config.read_only:
            return  # BEP 43: a read-only node does not answer
        sender = NodeInfo.make(q.sender, addr)
        if not q.read_only and (not self.config.enforce_bep42 or bep42_valid(q.sender, addr[0])):
            self._table_heard(sender, now, responded=False)
        reply = Response(q.t, self.id, ip=addr, version=self.config.version)
        if q.method == "ping":
            pass
        elif q.method == "find_node":
            assert q.target is not None
            reply.nodes = self.table.closest(q.target, now=now)
        elif q.method == "get_peers":
            assert q.target is not None
            reply.token = self.tokens.issue(addr[0], now)
            values = self.peer_store.get(q.target, now, limit=self.config.max_values, rng=self.rng)
            if values:
                reply.values = values
            reply.nodes = self.table.closest(q.target, now=now)
        elif q.method == "get":
            assert q.target is not None
            reply.token = self.tokens.issue(addr[0], now)
            reply.nodes = self.table.closest(q.target, now=now)
            item = self.items.get(q.target, now)
            if isinstance(item, MutableItem):
                reply.seq = item.seq
                if q.seq is None or item.seq > q.seq:  # the asker already has this version otherwise
                    reply.value, reply.k, reply.sig = item.v, item.k, item.sig
            elif item is not None:
                reply.value = item
        elif q.method == "put":
            assert q.token is not None
            if len(encode(q.value)) > krpc.MAX_ITEM:
                self._send(Error(q.t, krpc.MESSAGE_TOO_BIG, "message (v field) too big"), addr)
                return
            if not self.tokens.valid(q.token, addr[0], now):
                self.stats.bad_tokens += 1
                self._send(Error(q.t, krpc.PROTOCOL_ERROR, "bad token"), addr)
                return
            try:
                if q.k is not None:
                    assert q.sig is not None and q.seq is not None
                    self.items.put_mutable(MutableItem(q.k, q.seq, q.value, q.sig, q.salt), now, cas=q.cas)
                else:
                    self.items.put_immutable(q.value, now)
            except ItemError as exc:
                self.stats.bad_items += 1
                self._send(Error(q.t, exc.code, exc.message), addr)
                return
        elif q.method == "announce_peer":
            assert q.target is not None and q.token is not None
            if not self.tokens.valid(q.token, addr[0], now):
                self.stats.bad_tokens += 1
                self._send(Error(q.t, krpc.PROTOCOL_ERROR, "bad token"), addr)
                return
            port = addr[1] if q.implied_port or not q.port else q.port
            self.peer_store.announce(q.target, (addr[0], port), now)
        else:
            self._send(Error(q.t, krpc.METHOD_UNKNOWN, "method unknown"), addr)
            return
        self._send(reply, addr)

    def _on_reply(self, msg: Response | Error, addr: Address, now: float) -> None:
        pending = self._pending.get(msg.t)
        if pending is None or pending.addr != addr:
            # Unknown tid, or an answer from an address we did not ask: possibly spoofed. Drop.
            self.stats.unexpected += 1
            return
        del self._pending[msg.t]
        if isinstance(msg, Error):
            self.stats.errors_in += 1
            self._failed(pending, now, error=True)
            return
        self.stats.responses_in += 1
        node = NodeInfo.make(msg.sender, addr)
        if pending.node is not None and pending.node.int_id != node.int_id:
            self._failed(pending, now)  # the node changed its id: the old contact is gone
            return
        if msg.ip is not None and msg.ip[0] != addr[0]:
            self.external_ip = msg.ip
        if not self.config.enforce_bep42 or bep42_valid(node.id, addr[0]):
            self._table_heard(node, now, responded=True)
        if pending.purpose == "ping":
            self._events.append(PingDone(pending.request_id or 0, node))
        elif pending.purpose == "bootstrap":
            self._seed_bootstrap(node, msg.nodes or [], now)
        elif pending.lookup_id is not None:
            running = self._lookups.get(pending.lookup_id)
            if running is not None:
                lookup = running.lookup
                if msg.value is not None and lookup.method == "get":
                    self._got_item(running, msg)
                lookup.on_reply(node, now, nodes=msg.nodes, values=msg.values, token=msg.token)
                self._step_lookup(pending.lookup_id, now)

    @staticmethod
    def _got_item(running: _Running, msg: Response) -> None:
        """Believe only an item that matches the target: an immutable value that hashes to it, or a
        mutable item under the asked key and salt with a valid signature (the highest seq wins)."""
        lookup = running.lookup
        if running.salt is None:
            if lookup.value is None and immutable_target(msg.value) == lookup.target:
                lookup.value = msg.value
            return
        if msg.k is None or msg.sig is None or msg.seq is None or mutable_target(msg.k, running.salt) != lookup.target:
            return
        if isinstance(lookup.value, MutableItem) and lookup.value.seq >= msg.seq:
            return
        item = MutableItem(msg.k, msg.seq, msg.value, msg.sig, running.salt)
        if item.valid():
            lookup.value = item

    def _failed(self, pending: Pending, now: float, *, error: bool = False) -> None:
        if pending.node is not None and not error:
            self.table.failed(pending.node, now)
        if pending.purpose == "ping":
            self._events.append(PingDone(pending.request_id or 0, None))
        elif pending.purpose == "liveness" and pending.node is not None and pending.candidate is not None:
            self.table.remove(pending.node)
            self.table.heard_from(pending.candidate, now, responded=True)
        elif pending.lookup_id is not None and pending.node is not None:
            running = self._lookups.get(pending.lookup_id)
            if running is not None:
                running.lookup.on_failure(pending.node, now)
                self._step_lookup(pending.lookup_id, now)

    def _table_heard(self, node: NodeInfo, now: float, *, responded: bool) -> None:
        need = self.table.heard_from(node, now, responded=responded)
        if isinstance(need, PingNeeded):
            self._query(need.node.addr, "ping", now, node=need.node, purpose="liveness", candidate=need.candidate)

    # -- lookups ---------------------------------------------------------------------------------
    def start_lookup(self, target: bytes, now: float, *, method: str = "find_node",
                     announce_port: int | None = None, implied_port: bool = False,
                     seeds: list[NodeInfo] | None = None, purpose: str = "user", put_value: Any = None,
                     salt: bytes | None = None, put_cas: int | None = None) -> int:
        """Start an iterative lookup; a LookupDone event reports it. get_peers with announce_port
        also announces us to the closest nodes when it ends; get with put_value (a value, or a
        signed MutableItem) stores it at them. A get with `salt` looks for a mutable item."""
        if len(self._lookups) >= self.config.max_lookups:
            # Bounded: the oldest lookup is finished early rather than refusing the new one.
            oldest = min(self._lookups)
            self._lookups[oldest].lookup.finish(now)
            self._step_lookup(oldest, now)
        lookup_id = self._next_lookup
        self._next_lookup += 1
        seed_nodes = seeds if seeds is not None else self.table.closest(target, self.config.k * 2, now=now)
        lookup = Lookup.start(target, method, seed_nodes, now, k=self.config.k, alpha=self.config.alpha,
                              slow_after=self.config.slow_after, own_id=self.id)
        if isinstance(put_value, MutableItem):
            salt = put_value.salt
        self._lookups[lookup_id] = _Running(lookup, announce_port, implied_port, purpose, put_value, salt, put_cas)
        self._step_lookup(lookup_id, now)
        return lookup_id

    def _put_query(self, t: bytes, token: bytes, running: _Running) -> Query:
        item = running.put_value
        q = Query(t, "put", self.id, token=token, read_only=self.config.read_only, version=self.config.version)
        if isinstance(item, MutableItem):
            q.value, q.k, q.sig, q.seq, q.salt, q.cas = item.v, item.k, item.sig, item.seq, item.salt, running.put_cas
        else:
            q.value = item
        return q

    def lookup(self, lookup_id: int) -> Lookup | None:
        running = self._lookups.get(lookup_id)
        return running.lookup if running else None

    def _step_lookup(self, lookup_id: int, now: float) -> None:
        running = self._lookups.get(lookup_id)
        if running is None:
            return
        lookup = running.lookup
        for node in lookup.next_queries(now):
            if not self._query(node.addr, lookup.method, now, node=node, target=lookup.target,
                               lookup_id=lookup_id):
                lookup.on_failure(node, now)
        if not lookup.done:
            return
        del self._lookups[lookup_id]
        if running.put_value is not None:
            for cand in lookup.closest():
                if cand.token is not None:
                    t = self._tid()
                    if t is None:
                        break
                    self._pending[t] = Pending(cand.node.addr, "put", cand.node, now + self.config.query_timeout,
                                               purpose="announce")
                    self._send(self._put_query(t, cand.token, running), cand.node.addr)
        if running.announce_port is not None or running.implied_port:
            for cand in lookup.closest():
                if cand.token is not None:
                    self._query(cand.node.addr, "announce_peer", now, node=cand.node, target=lookup.target,
                                purpose="announce", port=running.announce_port or 0, token=cand.token,
                                implied_port=running.implied_port)
        if running.purpose == "bootstrap":
            self._bootstrapping = False
            self._events.append(BootstrapDone(len(self.table)))
            # Kademlia join: the self lookup only fills buckets near our id; look up a random id in
            # every bucket that is not full so far-away buckets are populated too.
            for bucket in list(self.table.buckets):
                if len(bucket.entries) < self.config.k and not bucket.covers(self.table.own_int):
                    self._refresh_bucket(bucket, now)
        if running.purpose != "refresh":
            self._events.append(LookupDone(lookup_id, lookup))

    # -- bootstrap, ping, maintenance --------------------------------------------------------------
    def bootstrap(self, addrs: list[Address], now: float) -> None:
        """Ask each bootstrap address for nodes near our id, then look our own id up."""
        self._bootstrapping = True
        for addr in addrs:
            self._query(addr, "find_node", now, target=self.id, purpose="bootstrap")
        if not addrs or len(self.table):
            self._start_self_lookup(now)

    def _seed_bootstrap(self, node: NodeInfo, nodes: list[NodeInfo], now: float) -> None:
        if not self._bootstrapping:
            return
        running = [i for i, r in self._lookups.items() if r.purpose == "bootstrap"]
        if running:
            # A bootstrap node answered after the self lookup began: feed its nodes in.
            self._lookups[running[0]].lookup.add_candidates([node, *nodes])
            self._step_lookup(running[0], now)
            return
        self._start_self_lookup(now, seeds=[node, *nodes])

    def _start_self_lookup(self, now: float, seeds: list[NodeInfo] | None = None) -> None:
        self.start_lookup(self.id, now, seeds=seeds, purpose="bootstrap")

    def ping(self, addr: Address, now: float) -> int:
        request_id = self._next_request
        self._next_request += 1
        if not self._query(addr, "ping", now, purpose="ping", request_id=request_id):
            self._events.append(PingDone(request_id, None))
        return request_id

    def tick(self, now: float) -> None:
        expired = [t for t, p in self._pending.items() if p.deadline <= now]
        for t in expired:
            pending = self._pending.pop(t)
            self.stats.timeouts += 1
            self._failed(pending, now)
        for lookup_id in list(self._lookups):
            self._step_lookup(lookup_id, now)
        if now - self._last_refresh >= 60.0:
            self._last_refresh = now
            self.peer_store.expire(now)
            for bucket in self.table.stale_buckets(now, self.config.refresh_interval)[:1]:
                self._refresh_bucket(bucket, now)

    def _refresh_bucket(self, bucket: Bucket, now: float) -> None:
        prefix = ID_BITS - (bucket.high - bucket.low).bit_length() + 1  # bits shared with our id
        if bucket.covers(self.table.own_int):
            target = random_id_in_bucket(self.id, prefix, self.rng)
        else:
            target = random_id_in_bucket(self.id, max(0, prefix - 1), self.rng)
        bucket.last_changed = now
        self.start_lookup(target, now, purpose="refresh")

    def next_wakeup(self, now: float) -> float | None:
        # Every deadline is `sent + query_timeout`, and dicts keep insertion order: the oldest
        # pending query (the first one) has the earliest deadline.
        times = [next(iter(self._pending.values())).deadline] if self._pending else []
        for running in self._lookups.values():
            slow = running.lookup.slow_deadline(now)
            if slow is not None:
                times.append(slow)
        return min(times) if times else None

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def lookups_running(self) -> int:
        return len(self._lookups)
