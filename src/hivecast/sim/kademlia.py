"""Kademlia (the mainline DHT core of `hivecast.dht.node`, unchanged) on the virtual network.

Nodes join one by one through a random live node (BEP 5 bootstrap: find_node for our own id, then a
refresh of every bucket that is not full). Lookups are get_peers for keys announced before any churn;
a lookup succeeds when it returns the announcer's address. Churn kills nodes without warning and
starts the same number of fresh ones, so N stays constant.

`wire=True` carries real bencoded datagrams; the default hands decoded messages over, which runs the
same node logic several times faster.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hivecast.dht.ids import ID_BITS, Address, NodeInfo, random_id
from hivecast.dht.krpc import Query
from hivecast.dht.node import DhtConfig, DhtNode, LookupDone
from hivecast.sim.clock import Timer, VirtualClock
from hivecast.sim.network import LatencyModel, VirtualNetwork
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord

REANNOUNCE_EVERY = 15 * 60.0


@dataclass(slots=True)
class _Host:
    addr: Address
    node: DhtNode
    wake: Timer | None = None
    done: dict[int, LookupDone] = field(default_factory=dict)


class KademliaSim:
    design = "kademlia"

    def __init__(self, *, seed: int = 1, config: DhtConfig | None = None, latency: LatencyModel | None = None,
                 loss: float = 0.0, wire: bool = False) -> None:
        self.seed = seed
        self.config = config or DhtConfig(query_timeout=2.0, slow_after=0.5)
        self.clock = VirtualClock()
        self.net = VirtualNetwork(self.clock, derive_rng(seed, "net"), latency=latency, loss=loss)
        self.rng = derive_rng(seed, "workload")
        self.wire = wire
        self.hosts: dict[Address, _Host] = {}
        self._serial = 0
        self.catalogue: dict[bytes, Address] = {}  # key -> announcing peer
        self._announced_at = 0.0
        # Optional: called with each finished lookup; returning True consumes the event.
        self.on_done: Callable[[_Host, LookupDone], bool] | None = None

    # -- hosts -----------------------------------------------------------------------------------
    def _new_address(self) -> Address:
        self._serial += 1
        s = self._serial
        return (f"10.{(s >> 16) & 255}.{(s >> 8) & 255}.{s & 255}", 6881)

    def _flush(self, host: _Host) -> None:
        node = host.node
        queried = False
        if self.wire:
            for data, dst in node.take_datagrams():
                self.net.send(host.addr, dst, data)
            queried = True
        else:
            send = self.net.send
            for msg, dst in node.take_messages():
                if type(msg) is Query:
                    queried = True
                send(host.addr, dst, msg)
        for event in node.take_events():
            if isinstance(event, LookupDone) and not (self.on_done is not None and self.on_done(host, event)):
                host.done[event.lookup_id] = event
        current = host.wake
        if current is not None and not current.cancelled and not queried:
            # Every deadline a core keeps is a query's send time plus a constant, and answers only
            # remove deadlines: without a new query the scheduled wake-up is still the earliest.
            return
        host.wake = self.clock.keep_earliest(current, node.next_wakeup(self.clock.now), self._tick, host)

    def flush(self, host: _Host) -> None:
        """Send what the host's core queued, pass on its events and schedule its next wake-up."""
        self._flush(host)

    def _tick(self, host: _Host) -> None:
        host.wake = None
        if self.hosts.get(host.addr) is not host:
            return
        host.node.tick(self.clock.now)
        self._flush(host)

    def _receive(self, host: _Host, payload: object, src: object) -> None:
        if self.hosts.get(host.addr) is not host:
            return
        assert isinstance(src, tuple)
        if self.wire:
            assert isinstance(payload, bytes)
            host.node.receive(payload, src, self.clock.now)
        else:
            host.node.handle(payload, src, self.clock.now)  # type: ignore[arg-type]
        self._flush(host)

    def add_node(self, *, bootstrap: bool = True, wait: bool = True) -> _Host:
        addr = self._new_address()
        node = DhtNode(random_id(derive_rng(self.seed, "id", addr)), self.clock.now, config=self.config,
                       rng=derive_rng(self.seed, "node", addr))
        host = _Host(addr, node)
        others = list(self.hosts)
        self.hosts[addr] = host
        self.net.attach(addr, lambda payload, src: self._receive(host, payload, src))
        if bootstrap and others:
            node.bootstrap([self.rng.choice(others)], self.clock.now)
            self._flush(host)
            if wait:
                self.clock.run_while(lambda: node.lookups_running > 0 or node.pending_count > 0,
                                     limit=self.clock.now + 120.0)
        return host

    def kill(self, addr: Address) -> None:
        host = self.hosts.pop(addr)
        self.net.detach(addr)
        if host.wake is not None:
            host.wake.cancel()

    def build(self, n: int) -> None:
        """n nodes joining one by one through the protocol (each waits for its bootstrap)."""
        while len(self.hosts) < n:
            self.add_node()

    def build_converged(self, n: int) -> None:
        """n nodes whose routing tables are in the state the join protocol converges to: for each
        prefix length j, k contacts drawn at random from the live nodes that share exactly j leading
        bits with the node's id (one more waits in the bucket's replacement cache), and every node
        of the node's own deepest range (the ones a
        self-lookup finds). Contacts go in through the real routing table (`heard_from`), so bucket
        splits and limits are the table's own. Joining 10,000 nodes one by one through find_node
        lookups costs minutes; lookups afterwards run unchanged through the node core and network."""
        fresh = [self.add_node(bootstrap=False) for _ in range(n - len(self.hosts))]
        hosts = sorted(self.hosts.values(), key=lambda h: h.node.table.own_int)
        ints = [h.node.table.own_int for h in hosts]
        infos = [NodeInfo.make(h.node.id, h.addr) for h in hosts]
        pick = derive_rng(self.seed, "converged")
        k = self.config.k
        now = self.clock.now
        for host in fresh:
            table = host.node.table
            own = table.own_int
            for j in range(ID_BITS):
                shift = ID_BITS - j
                lo = (own >> shift) << shift if j else 0
                start, stop = bisect.bisect_left(ints, lo), bisect.bisect_left(ints, lo + (1 << shift))
                if stop - start - 1 <= k:  # the rest fits in our own bucket: all of them
                    for i in range(start, stop):
                        if ints[i] != own:
                            table.heard_from(infos[i], now, responded=True)
                    break
                bit = 1 << (shift - 1)
                far_lo = lo | ((own & bit) ^ bit)
                a, b = bisect.bisect_left(ints, far_lo), bisect.bisect_left(ints, far_lo + bit)
                # k contacts, plus one more when there are more: like any node heard of in a full
                # range, it makes the bucket holding our id split, and waits in the replacement cache.
                chosen = range(a, b) if b - a <= k + 1 else sorted(pick.sample(range(a, b), k + 1))
                for i in chosen:
                    table.heard_from(infos[i], now, responded=True)

    def churn(self, fraction: float) -> None:
        """Kill `fraction` of the nodes without warning and start as many new ones."""
        count = int(len(self.hosts) * fraction)
        announcers = set(self.catalogue.values())
        victims = self.rng.sample([a for a in self.hosts if a not in announcers], count)
        for addr in victims:
            self.kill(addr)
        # The newcomers join at the same time (a burst well inside the peers' 30-minute lifetime).
        for _ in range(count):
            self.add_node(wait=False)
        self.clock.run_until(self.clock.now + 60.0)

    # -- workload --------------------------------------------------------------------------------
    def _run_lookup(self, host: _Host, target: bytes, method: str, announce_port: int | None = None) -> LookupDone:
        lookup_id = host.node.start_lookup(target, self.clock.now, method=method, announce_port=announce_port)
        self._flush(host)
        self.clock.run_while(lambda: lookup_id not in host.done, limit=self.clock.now + 300.0)
        event = host.done.pop(lookup_id, None)
        if event is None:
            raise RuntimeError("lookup did not finish within 300 s of virtual time")
        return event

    def announce(self, keys: int) -> None:
        """Publish `keys` random info-hashes, each announced by a random node."""
        for _ in range(keys):
            key = random_id(self.rng)
            host = self.hosts[self.rng.choice(list(self.hosts))]
            self._run_lookup(host, key, "get_peers", announce_port=host.addr[1])
            self.catalogue[key] = host.addr
        self.clock.run_until(self.clock.now + 5.0)  # let the announces land
        self._announced_at = self.clock.now

    def reannounce(self) -> None:
        """Every announcer announces again (real clients do so every 15-30 minutes; stored peers
        expire after 30)."""
        for key, addr in self.catalogue.items():
            if addr in self.hosts:
                self._run_lookup(self.hosts[addr], key, "get_peers", announce_port=addr[1])
        self.clock.run_until(self.clock.now + 5.0)
        self._announced_at = self.clock.now

    def lookups(self, count: int, *, churn: float = 0.0, start_index: int = 0) -> list[LookupRecord]:
        records = []
        keys = list(self.catalogue)
        addrs = list(self.hosts)
        for i in range(count):
            if self.clock.now - self._announced_at >= REANNOUNCE_EVERY:
                self.reannounce()
            key = self.rng.choice(keys)
            source = self.rng.choice(addrs)
            while source not in self.hosts:
                source = self.rng.choice(addrs)
            sent_before = self.hosts[source].node.stats.sent
            started = self.clock.now
            event = self._run_lookup(self.hosts[source], key, "get_peers")
            lookup = event.lookup
            records.append(LookupRecord(
                self.design, start_index + i, len(self.hosts), churn, f"{source[0]}", key.hex()[:16],
                self.catalogue[key] in lookup.peers, lookup.hops,
                self.hosts[source].node.stats.sent - sent_before if source in self.hosts else lookup.stats.queries,
                self.clock.now - started))
        return records


def random_keys(rng: random.Random, count: int) -> list[bytes]:
    return [random_id(rng) for _ in range(count)]
