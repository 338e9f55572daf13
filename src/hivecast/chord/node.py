"""The Chord node core (sans-I/O): successor list, predecessor, fingers, stabilization and iterative
lookups. Feed it messages with `handle`, call `tick(now)` at `next_wakeup(now)`, drain
`take_messages()` and `take_events()`.

Lookups are iterative: the asker sends `step(key)` to one node at a time; a node answers either
"done: my successor owns the key" or "ask this node next" (its closest finger preceding the key).
Hops are the number of nodes asked, which the paper puts at about (1/2) log2 N. A node that does not
answer is dropped from our tables and the lookup backs up one hop and asks again, excluding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hivecast.chord.messages import Message, Reply, Request
from hivecast.chord.ring import DEFAULT_BITS, UNKNOWN_ID, NodeRef, in_half_open, in_open


@dataclass(frozen=True, slots=True)
class ChordConfig:
    bits: int = DEFAULT_BITS
    successors: int = 4
    rpc_timeout: float = 1.0
    stabilize_every: float = 1.0
    fix_fingers_every: float = 0.5
    check_predecessor_every: float = 2.0
    max_steps: int = 64
    max_pending: int = 1024
    maintenance: bool = True  # run stabilization timers (the simulator may drive a static ring)
    confirm_owner: bool = True  # ping the named owner before reporting it


@dataclass(slots=True)
class ChordLookup:
    key: int
    started: float
    path: list[NodeRef] = field(default_factory=list)  # nodes asked, in order (the hop count)
    current: NodeRef | None = None
    failed: set[int] = field(default_factory=set)
    owner: NodeRef | None = None
    done: bool = False
    ok: bool = False
    steps: int = 0
    finished: float | None = None
    purpose: str = "user"  # user | join | finger:<i>

    @property
    def hops(self) -> int:
        return len(self.path)


@dataclass(slots=True)
class LookupDone:
    lookup_id: int
    lookup: ChordLookup


@dataclass(slots=True)
class _Pending:
    op: str
    to: NodeRef
    deadline: float
    lookup_id: int | None = None


class ChordNode:
    def __init__(self, me: NodeRef, now: float, *, config: ChordConfig | None = None) -> None:
        self.me = me
        self.config = config or ChordConfig()
        self.successors: list[NodeRef] = [me]
        self.predecessor: NodeRef | None = None
        self.fingers: list[NodeRef | None] = [None] * self.config.bits
        self._outbox: list[tuple[Message, tuple[str, int]]] = []
        self._events: list[LookupDone] = []
        self._pending: dict[int, _Pending] = {}
        self._rid = 0
        self._lookups: dict[int, ChordLookup] = {}
        self._next_lookup = 1
        self._next_finger = 0
        self._next_stabilize = now
        self._next_fix = now
        self._next_check = now
        self.handled = 0  # requests answered: the load figure
        self.joined = True
        self._bootstrap: NodeRef | None = None  # who we joined through: asked again if we end up alone

    # -- output ----------------------------------------------------------------------------------
    def take_messages(self) -> list[tuple[Message, tuple[str, int]]]:
        out, self._outbox = self._outbox, []
        return out

    def take_events(self) -> list[LookupDone]:
        out, self._events = self._events, []
        return out

    @property
    def successor(self) -> NodeRef:
        return self.successors[0]

    def _request(self, to: NodeRef, op: str, now: float, *, key: int | None = None,
                 exclude: list[int] | None = None, lookup_id: int | None = None) -> bool:
        if len(self._pending) >= self.config.max_pending:
            return False
        self._rid = (self._rid + 1) & 0xFFFFFFFF
        self._pending[self._rid] = _Pending(op, to, now + self.config.rpc_timeout, lookup_id)
        self._outbox.append((Request(self._rid, op, self.me, key, exclude or []), to.addr))
        return True

    # -- local routing ---------------------------------------------------------------------------
    def closest_preceding(self, key: int, exclude: set[int] | frozenset[int] = frozenset()) -> NodeRef | None:
        """The known node closest to `key` while still preceding it on the ring (fingers, successors)."""
        best: NodeRef | None = None
        best_gap = -1
        size = 1 << self.config.bits
        for node in (*self.fingers, *self.successors):
            if node is None or node.id in exclude or node.id == self.me.id:
                continue
            if in_open(node.id, self.me.id, key):
                gap = (node.id - self.me.id) % size
                if gap > best_gap:
                    best, best_gap = node, gap
        return best

    def local_step(self, key: int, exclude: set[int] | frozenset[int] = frozenset()) -> tuple[bool, NodeRef]:
        """(True, owner) if our successor owns `key`; else (False, the next node to ask)."""
        succ = next((s for s in self.successors if s.id not in exclude), self.me)
        if succ.id != self.me.id and in_half_open(key, self.me.id, succ.id):
            return True, succ
        nxt = self.closest_preceding(key, exclude)
        if nxt is not None:
            return False, nxt
        # Nobody closer is known. Only a node that knows no other member may claim the key; one
        # that lost its successors must not claim the whole ring (joiners would hang off it).
        return True, succ

    # -- input -----------------------------------------------------------------------------------
    def handle(self, msg: Message, src: tuple[str, int], now: float) -> None:
        if isinstance(msg, Request):
            self._on_request(msg, src, now)
        else:
            self._on_reply(msg, src, now)

    def _on_request(self, req: Request, src: tuple[str, int], now: float) -> None:
        self.handled += 1
        sender = NodeRef(req.sender.id, src, req.sender.url)  # trust the address we saw, not the claim
        reply = Reply(req.rid, self.me)
        if req.op == "step":
            assert req.key is not None
            reply.done, reply.node = self.local_step(req.key, set(req.exclude))
        elif req.op == "get_pred":
            reply.node = self.predecessor
            reply.successors = list(self.successors)
        elif req.op == "notify":
            if (self.predecessor is None or in_open(sender.id, self.predecessor.id, self.me.id)
                    or self.predecessor.id == self.me.id):
                self.predecessor = sender
            if self.successor.id == self.me.id and sender.id != self.me.id and self._bootstrap is None:
                # The ring's first member, alone so far, gains its second. (A node still joining
                # must not take a notifier as successor: the notifier precedes it.)
                self.successors = [sender]
        self._outbox.append((reply, src))

    def _on_reply(self, reply: Reply, src: tuple[str, int], now: float) -> None:
        pending = self._pending.get(reply.rid)
        if pending is None or pending.to.addr != src:
            return  # unknown request id, or an answer from an address we did not ask: dropped
        del self._pending[reply.rid]
        if pending.op == "step" and pending.lookup_id is not None:
            self._lookup_reply(pending.lookup_id, reply, now)
        elif pending.op == "ping" and pending.lookup_id is not None:
            lookup = self._lookups.get(pending.lookup_id)
            if lookup is not None:
                self._finish(pending.lookup_id, lookup, pending.to, now)  # the owner is alive
        elif pending.op == "get_pred":
            self._stabilize_reply(reply, now)

    def _expire(self, now: float) -> None:
        for rid in [r for r, p in self._pending.items() if p.deadline <= now]:
            pending = self._pending.pop(rid)
            self._forget(pending.to.id)
            if pending.op in ("step", "ping") and pending.lookup_id is not None:
                self._lookup_failed(pending.lookup_id, pending.to, now)

    def _forget(self, node_id: int) -> None:
        """A node stopped answering: drop it everywhere we route through it."""
        self.successors = [s for s in self.successors if s.id != node_id] or [
            next((f for f in self.fingers if f is not None and f.id != node_id), self.me)]
        self.fingers = [None if f is not None and f.id == node_id else f for f in self.fingers]
        if self.predecessor is not None and self.predecessor.id == node_id:
            self.predecessor = None

    # -- lookups ---------------------------------------------------------------------------------
    def start_lookup(self, key: int, now: float, *, via: NodeRef | None = None, purpose: str = "user") -> int:
        lookup_id = self._next_lookup
        self._next_lookup += 1
        lookup = ChordLookup(key, now, purpose=purpose)
        self._lookups[lookup_id] = lookup
        if via is not None:
            self._ask(lookup_id, lookup, via, now)
        else:
            done, node = self.local_step(key)
            if done:
                self._conclude(lookup_id, lookup, node, now)
            else:
                self._ask(lookup_id, lookup, node, now)
        return lookup_id

    def _ask(self, lookup_id: int, lookup: ChordLookup, node: NodeRef, now: float) -> None:
        lookup.steps += 1
        if lookup.steps > self.config.max_steps or not self._request(
                node, "step", now, key=lookup.key, exclude=sorted(lookup.failed)[:16], lookup_id=lookup_id):
            self._finish(lookup_id, lookup, None, now)
            return
        lookup.current = node
        lookup.path.append(node)

    def _lookup_reply(self, lookup_id: int, reply: Reply, now: float) -> None:
        lookup = self._lookups.get(lookup_id)
        if lookup is None or reply.node is None:
            if lookup is not None:
                self._finish(lookup_id, lookup, None, now)
            return
        if reply.done:
            self._conclude(lookup_id, lookup, reply.node, now)
            return
        current = lookup.current or self.me
        if current.id == UNKNOWN_ID:
            # A seed asked by its address alone: its answer tells its id. Measured from the
            # placeholder, a next hop past zero on the ring would fail the check below every time.
            current = reply.sender
        # Progress check: the next hop must lie strictly between the node we asked and the key.
        if not in_open(reply.node.id, current.id, lookup.key) or reply.node.id in lookup.failed:
            self._finish(lookup_id, lookup, None, now)
            return
        self._ask(lookup_id, lookup, reply.node, now)

    def _lookup_failed(self, lookup_id: int, node: NodeRef, now: float) -> None:
        lookup = self._lookups.get(lookup_id)
        if lookup is None:
            return
        lookup.failed.add(node.id)
        # Back up: ask the previous node on the path again (or decide locally), excluding the dead one.
        if lookup.path and lookup.path[-1].id == node.id:
            lookup.path.pop()
        previous = lookup.path[-1] if lookup.path else None
        if previous is not None:
            lookup.path.pop()
            self._ask(lookup_id, lookup, previous, now)
            return
        done, nxt = self.local_step(lookup.key, lookup.failed)
        if done:
            self._conclude(lookup_id, lookup, nxt, now)
        else:
            self._ask(lookup_id, lookup, nxt, now)

    def _conclude(self, lookup_id: int, lookup: ChordLookup, owner: NodeRef, now: float) -> None:
        """An owner was named. With confirm_owner, ping it first: a successor pointer can outlive its
        node for a stabilization period, and a dead owner must not be reported (the lookup then backs
        up and asks again without it). The ping is not a hop."""
        if owner.id in lookup.failed:
            self._finish(lookup_id, lookup, None, now)
            return
        if not self.config.confirm_owner or owner.id == self.me.id or lookup.purpose != "user":
            self._finish(lookup_id, lookup, owner, now)
            return
        lookup.steps += 1
        if lookup.steps > self.config.max_steps or not self._request(owner, "ping", now, lookup_id=lookup_id):
            self._finish(lookup_id, lookup, None, now)

    def _finish(self, lookup_id: int, lookup: ChordLookup, owner: NodeRef | None, now: float) -> None:
        lookup.done = True
        lookup.ok = owner is not None
        lookup.owner = owner
        lookup.finished = now
        self._lookups.pop(lookup_id, None)
        if lookup.purpose == "join":
            if owner is not None and owner.id != self.me.id:
                self.successors = [owner]
                self._request(owner, "notify", now)
                self._next_stabilize = now  # learn the owner's successor list (our backups) at once
            self.joined = True  # even if it failed: the next stabilize notices we are alone and retries
        elif lookup.purpose.startswith("finger:"):
            if owner is not None:
                self.fingers[int(lookup.purpose[7:])] = owner
        else:
            self._events.append(LookupDone(lookup_id, lookup))

    # -- membership and maintenance --------------------------------------------------------------
    def join(self, known: NodeRef, now: float, *, rejoin: bool = False) -> None:
        """Join the ring through any member: look our own id up through it to find our successor."""
        self.joined = False
        self.predecessor = None
        if not rejoin:
            self._bootstrap = known
        self.start_lookup(self.me.id, now, via=known, purpose="join")

    def _stabilize_reply(self, reply: Reply, now: float) -> None:
        succ = self.successor
        x = reply.node
        if x is not None and x.id != self.me.id and in_open(x.id, self.me.id, succ.id):
            self.successors = _unique([x, *self.successors])[: self.config.successors]
            succ = x
        else:
            tail = [s for s in reply.successors if s.id != self.me.id]
            self.successors = _unique([succ, *tail])[: self.config.successors]
        self._request(succ, "notify", now)

    def tick(self, now: float) -> None:
        self._expire(now)
        if not self.config.maintenance:
            return
        if now >= self._next_stabilize:
            self._next_stabilize = now + self.config.stabilize_every
            if self.successor.id != self.me.id:
                self._request(self.successor, "get_pred", now)
            elif self.joined:
                # We lost every successor (they died before we learnt backups). Taking the
                # predecessor as successor would point backwards and walk the ring the wrong way;
                # look our own id up through a member we know instead.
                pred = self.predecessor if self.predecessor is not None and self.predecessor.id != self.me.id else None
                via = pred or self._bootstrap
                if via is not None:
                    self.join(via, now, rejoin=True)
                    return
        if now >= self._next_fix:
            self._next_fix = now + self.config.fix_fingers_every
            if not self.joined:
                return
            i = self._next_finger
            self._next_finger = (i + 1) % self.config.bits
            self.start_lookup((self.me.id + (1 << i)) % (1 << self.config.bits), now, purpose=f"finger:{i}")
        if now >= self._next_check:
            self._next_check = now + self.config.check_predecessor_every
            if self.predecessor is not None and self.predecessor.id != self.me.id:
                self._request(self.predecessor, "ping", now)

    def next_wakeup(self, now: float) -> float | None:
        times = [p.deadline for p in self._pending.values()]
        if self.config.maintenance:
            times += [self._next_stabilize, self._next_fix, self._next_check]
        return min(times) if times else None

    def set_tables(self, successors: list[NodeRef], predecessor: NodeRef | None, fingers: list[NodeRef | None]) -> None:
        """Install a converged state (the simulator's ideal ring); the protocol then keeps it."""
        self.successors = successors or [self.me]
        self.predecessor = predecessor
        self.fingers = fingers


def _unique(nodes: list[NodeRef]) -> list[NodeRef]:
    seen: set[int] = set()
    out = []
    for n in nodes:
        if n.id not in seen:
            seen.add(n.id)
            out.append(n)
    return out
