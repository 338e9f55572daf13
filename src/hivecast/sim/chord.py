"""Chord (the core of `hivecast.chord.node`, unchanged) on the virtual network.

`build(n)` installs the converged ring (successor lists, predecessors and exact fingers) that
stabilization reaches, which is what the paper's hop figures assume; `join_node` adds a member
through the protocol. Churn kills members without warning and joins fresh ones; maintenance timers
then run for `settle` seconds of virtual time before lookups. A lookup succeeds only if it names the
key's true owner among the live nodes: a stale owner counts as a failure.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hivecast.chord.messages import Message, Request
from hivecast.chord.node import ChordConfig, ChordNode, LookupDone
from hivecast.chord.ring import NodeRef
from hivecast.sim.clock import Timer, VirtualClock
from hivecast.sim.network import LatencyModel, VirtualNetwork
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord


@dataclass(slots=True)
class _Host:
    ref: NodeRef
    node: ChordNode
    wake: Timer | None = None
    done: dict[int, LookupDone] = field(default_factory=dict)


class ChordSim:
    design = "chord"

    def __init__(self, *, seed: int = 1, config: ChordConfig | None = None, latency: LatencyModel | None = None,
                 loss: float = 0.0) -> None:
        self.seed = seed
        # Maintenance is off while the ring is static (fingers are exact) and on from the first churn.
        self.config = config or ChordConfig(bits=32, stabilize_every=5.0, fix_fingers_every=2.0,
                                            check_predecessor_every=5.0, maintenance=False)
        self.clock = VirtualClock()
        self.net = VirtualNetwork(self.clock, derive_rng(seed, "net"), latency=latency, loss=loss)
        self.rng = derive_rng(seed, "workload")
        self.hosts: dict[tuple[str, int], _Host] = {}
        self._serial = 0
        # Optional: called with each finished lookup; returning True consumes the event.
        self.on_done: Callable[[_Host, LookupDone], bool] | None = None

    def _new_ref(self) -> NodeRef:
        self._serial += 1
        s = self._serial
        addr = (f"10.{(s >> 16) & 255}.{(s >> 8) & 255}.{s & 255}", 7000)
        node_id = derive_rng(self.seed, "chord-id", s).getrandbits(self.config.bits)
        return NodeRef(node_id, addr)

    def _flush(self, host: _Host, *, force: bool = False) -> None:
        node = host.node
        requested = force
        send = self.net.send
        for msg, dst in node.take_messages():
            if type(msg) is Request:
                requested = True
            send(host.ref.addr, dst, msg)
        for event in node.take_events():
            if not (self.on_done is not None and self.on_done(host, event)):
                host.done[event.lookup_id] = event
        current = host.wake
        if current is not None and not current.cancelled and not requested:
            # A core's deadlines are a request's send time plus a constant, or maintenance times
            # that only move in tick() (after which there is no wake-up left) or with a request:
            # without a new request the scheduled wake-up is still the earliest.
            return
        host.wake = self.clock.keep_earliest(current, node.next_wakeup(self.clock.now), self._tick, host)

    def flush(self, host: _Host) -> None:
        """Send what the host's core queued, pass on its events and schedule its next wake-up."""
        self._flush(host)

    def _tick(self, host: _Host) -> None:
        host.wake = None
        if self.hosts.get(host.ref.addr) is not host:
            return
        host.node.tick(self.clock.now)
        self._flush(host)

    def _receive(self, host: _Host, payload: Message, src: tuple[str, int]) -> None:
        if self.hosts.get(host.ref.addr) is not host:
            return
        host.node.handle(payload, src, self.clock.now)
        self._flush(host)

    def _attach(self, ref: NodeRef) -> _Host:
        host = _Host(ref, ChordNode(ref, self.clock.now, config=self.config))
        self.hosts[ref.addr] = host
        self.net.attach(ref.addr, functools.partial(self._receive, host))
        return host

    def build(self, n: int) -> None:
        """An ideal, stabilized ring of n members."""
        for _ in range(n):
            self._attach(self._new_ref())
        ring = sorted((h.ref for h in self.hosts.values()), key=lambda r: r.id)
        ids = [r.id for r in ring]
        size = 1 << self.config.bits
        r = self.config.successors
        for i, ref in enumerate(ring):
            fingers: list[NodeRef | None] = []
            for b in range(self.config.bits):
                j = bisect.bisect_left(ids, (ref.id + (1 << b)) % size) % len(ring)
                fingers.append(ring[j])
            successors = [ring[(i + s) % len(ring)] for s in range(1, min(r, len(ring) - 1) + 1)] or [ref]
            self.hosts[ref.addr].node.set_tables(successors, ring[i - 1], fingers)
        for host in self.hosts.values():
            self._flush(host)

    def join_node(self) -> _Host:
        known = self.hosts[self.rng.choice(list(self.hosts))].ref
        host = self._attach(self._new_ref())
        host.node.join(known, self.clock.now)
        self._flush(host)
        return host

    def kill(self, addr: tuple[str, int]) -> None:
        host = self.hosts.pop(addr)
        self.net.detach(addr)
        if host.wake is not None:
            host.wake.cancel()

    def churn(self, fraction: float, *, settle: float = 60.0) -> None:
        self.config = replace(self.config, maintenance=True)
        for host in self.hosts.values():
            host.node.config = self.config
            self._flush(host, force=True)
        count = int(len(self.hosts) * fraction)
        for addr in self.rng.sample(list(self.hosts), count):
            self.kill(addr)
        for _ in range(count):
            self.join_node()
        self.clock.run_until(self.clock.now + settle)

    def owner(self, key: int) -> NodeRef:
        """The key's true owner among live nodes (ground truth for judging lookups)."""
        ring = sorted((h.ref for h in self.hosts.values()), key=lambda r: r.id)
        ids = [r.id for r in ring]
        return ring[bisect.bisect_left(ids, key) % len(ring)]

    def lookups(self, count: int, *, churn: float = 0.0, start_index: int = 0) -> list[LookupRecord]:
        records = []
        ring = sorted((h.ref for h in self.hosts.values()), key=lambda r: r.id)
        ids = [r.id for r in ring]
        addrs = list(self.hosts)
        for i in range(count):
            key = self.rng.getrandbits(self.config.bits)
            true_owner = ring[bisect.bisect_left(ids, key) % len(ring)]
            host = self.hosts[self.rng.choice(addrs)]
            started = self.clock.now
            lookup_id = host.node.start_lookup(key, self.clock.now)
            self._flush(host)
            self.clock.run_while(lambda h=host, lid=lookup_id: lid not in h.done,  # type: ignore[misc]
                                 limit=self.clock.now + 120.0)
            event = host.done.pop(lookup_id, None)
            ok = event is not None and event.lookup.ok and event.lookup.owner is not None \
                and event.lookup.owner.id == true_owner.id
            hops = event.lookup.hops if event is not None else 0
            steps = event.lookup.steps if event is not None else 0
            records.append(LookupRecord(self.design, start_index + i, len(self.hosts), churn, host.ref.addr[0],
                                        f"{key:x}", ok, hops, 2 * steps,
                                        self.clock.now - started))
        return records
