"""The asyncio adapter: a UDP socket around the sans-I/O `ChordNode`, a timer task, lookup futures,
and joining through a list of seeds (no central directory)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from hivecast.chord.messages import ChordProtocolError, decode, encode
from hivecast.chord.node import ChordConfig, ChordNode, LookupDone
from hivecast.chord.ring import UNKNOWN_ID, NodeRef, key_id
from hivecast.net import NetError, UdpEndpoint, open_udp


class ChordServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, url: str = "", name: str | None = None,
                 config: ChordConfig | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.url = url
        self.name = name
        self.config = config or ChordConfig(rpc_timeout=0.5, stabilize_every=0.2, fix_fingers_every=0.1,
                                            check_predecessor_every=0.3)
        self.node: ChordNode | None = None
        self.endpoint: UdpEndpoint | None = None
        self._futures: dict[int, asyncio.Future[LookupDone]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.malformed = 0
        self.seeds: list[tuple[str, int]] = []
        self._next_seed = 0
        self._seed_retry_at = 0.0
        # Longer than a join lookup's first RPC deadline, so one attempt ends before the next starts.
        self.seed_retry_every = max(1.0, 2 * self.config.rpc_timeout)

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    @property
    def me(self) -> NodeRef:
        assert self.node is not None
        return self.node.me

    async def bind(self) -> tuple[str, int]:
        """Open the UDP socket (early, so a taken port is a startup error); `start` joins later."""
        if self.endpoint is None:
            self.endpoint = await open_udp(self.host, self.requested_port, on_datagram=self._on_datagram)
        host, port = self.endpoint.local_address[:2]
        return str(host), int(port)

    async def start(self, join: tuple[str, int] | None = None, *, seeds: Sequence[tuple[str, int]] = (),
                    advertise: str | None = None) -> None:
        """Bind, then join the ring through `join` or any of `seeds` (tried in turn until one answers);
        with none of them answering (or none given), this node is a ring of its own meanwhile.
        `advertise` is the address other members reach us at (needed when bound to a wildcard)."""
        host, port = await self.bind()
        addr = (advertise or host, port)
        # The id is the hash of the member's name (default: its address), so a restart keeps its arc.
        ident = key_id(self.name or f"{addr[0]}:{addr[1]}", self.config.bits)
        self.node = ChordNode(NodeRef(ident, addr, self.url), self._now(), config=self.config)
        candidates = ([join] if join is not None else []) + list(seeds)
        self.seeds = [s for s in dict.fromkeys(candidates) if not _is_self(s, (str(addr[0]), int(addr[1])))]
        self._join_next_seed()
        self._task = asyncio.get_running_loop().create_task(self._timer(), name="chord-timer")
        self._flush()

    def _join_next_seed(self) -> None:
        """While we know no other member, look our id up through the next seed. The core's `rejoin`
        form keeps no bootstrap node, so a node that starts alone still accepts the first member
        that notifies it (two seeds starting at once find each other either way)."""
        assert self.node is not None
        now = self._now()
        self._seed_retry_at = now + self.seed_retry_every
        if not self.seeds or self.node.successor.id != self.node.me.id:
            return
        seed = self.seeds[self._next_seed % len(self.seeds)]
        self._next_seed += 1
        self.node.join(NodeRef(UNKNOWN_ID, seed), now, rejoin=True)

    @property
    def join_attempts(self) -> int:
        """Joins tried through seeds so far (one per retry period while we know no other member)."""
        return self._next_seed

    def state(self) -> dict[str, Any]:
        """The node's view of the ring, for the stats endpoint and for operators."""
        assert self.node is not None
        node = self.node
        return {"id": f"{node.me.id:x}", "url": node.me.url, "udp": list(node.me.addr),
                "successors": [s.url or f"{s.addr[0]}:{s.addr[1]}" for s in node.successors],
                "predecessor": node.predecessor.url if node.predecessor is not None else None,
                "alone": node.successor.id == node.me.id, "malformed": self.malformed, "seeds": len(self.seeds),
                "join_attempts": self.join_attempts}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.endpoint is not None:
            self.endpoint.close()

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.node is None:
            return  # bound, not started yet
        try:
            msg = decode(data, self.config.bits)
        except ChordProtocolError:
            self.malformed += 1
            return
        self.node.handle(msg, (str(addr[0]), int(addr[1])), self._now())
        self._flush()

    def _flush(self) -> None:
        assert self.node is not None and self.endpoint is not None
        for msg, addr in self.node.take_messages():
            with contextlib.suppress(NetError):
                self.endpoint.send(encode(msg), addr)
        for event in self.node.take_events():
            fut = self._futures.pop(event.lookup_id, None)
            if fut is not None and not fut.done():
                fut.set_result(event)
        self._wake.set()

    async def _timer(self) -> None:
        assert self.node is not None
        while True:
            now = self._now()
            wake = self.node.next_wakeup(now)
            delay = 0.5 if wake is None else min(0.5, max(0.002, wake - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self.node.tick(self._now())
            if self.seeds and self._now() >= self._seed_retry_at:
                self._join_next_seed()
            self._flush()
            self._wake.clear()

    async def lookup(self, key: int, *, timeout: float = 5.0) -> NodeRef | None:
        """The owner (successor) of `key` on the ring, or None if the lookup failed."""
        assert self.node is not None
        lookup_id = self.node.start_lookup(key, self._now())
        fut: asyncio.Future[LookupDone] = asyncio.get_running_loop().create_future()
        self._futures[lookup_id] = fut
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                event = await fut
        except TimeoutError:
            return None
        finally:
            self._futures.pop(lookup_id, None)
        return event.lookup.owner if event.lookup.ok else None

    async def owner_of(self, key: str, *, timeout: float = 5.0) -> str | None:
        """The placement hook: base URL of the edge that owns object `key` (None if unknown now)."""
        owner = await self.lookup(key_id(key, self.config.bits), timeout=timeout)
        return owner.url if owner is not None else None


def _is_self(seed: tuple[str, int], addr: tuple[str, int]) -> bool:
    if seed[1] != addr[1]:
        return False
    local = {addr[0], "localhost", "127.0.0.1", "::1"} if addr[0] in ("0.0.0.0", "::", "127.0.0.1") else {addr[0]}
    return seed[0] in local
