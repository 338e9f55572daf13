"""The asyncio adapter: one UDP socket around the sans-I/O `DhtNode`, futures for lookups and pings,
a timer task, and the routing table saved to disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from pathlib import Path
from typing import Any

from hivecast.dht.ids import Address, NodeInfo, random_id
from hivecast.dht.items import MutableItem, mutable_target, public_key_of, sign
from hivecast.dht.krpc import MAX_ITEM
from hivecast.dht.lookup import Lookup
from hivecast.dht.node import BootstrapDone, DhtConfig, DhtNode, LookupDone, PingDone
from hivecast.dht.state import load_state, save_state
from hivecast.net import UdpEndpoint, open_udp
from hivecast.net.errors import NetError
from hivecast.p2p.bencode import encode

log = logging.getLogger(__name__)

SAVE_EVERY = 300.0


class DhtServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, node_id: bytes | None = None,
                 bootstrap: list[Address] | None = None, state_path: Path | None = None,
                 config: DhtConfig | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.bootstrap_nodes = list(bootstrap or [])
        self.state_path = state_path
        self.config = config or DhtConfig()
        self._rng = random.SystemRandom()
        saved_id, self._saved_nodes = load_state(state_path) if state_path else (None, [])
        self.node = DhtNode(node_id or saved_id or random_id(self._rng), self._now(), config=self.config,
                            rng=self._rng)
        self.endpoint: UdpEndpoint | None = None
        self._lookups: dict[int, asyncio.Future[Lookup]] = {}
        self._pings: dict[int, asyncio.Future[NodeInfo | None]] = {}
        self._bootstrapped = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_save = self._now()
        self.send_errors = 0

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    @property
    def port(self) -> int:
        assert self.endpoint is not None
        return self.endpoint.port

    @property
    def address(self) -> Address:
        assert self.endpoint is not None
        return self.endpoint.local_address

    async def start(self) -> None:
        self.endpoint = await open_udp(self.host, self.requested_port, on_datagram=self._on_datagram)
        self._task = asyncio.get_running_loop().create_task(self._timer(), name="dht-timer")
        # Saved contacts first (they knew us), then the configured bootstrap nodes.
        targets = [n.addr for n in self._saved_nodes[:32]] + self.bootstrap_nodes
        if targets:
            self.node.bootstrap(list(dict.fromkeys(targets)), self._now())
            self._flush()
        else:
            self._bootstrapped.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.save()
        if self.endpoint is not None:
            self.endpoint.close()
        futures: list[asyncio.Future[Any]] = [*self._lookups.values(), *self._pings.values()]
        for fut in futures:
            if not fut.done():
                fut.cancel()

    def save(self) -> None:
        if self.state_path is None:
            return
        try:
            # Most recently heard-from first: the likeliest to still be there at the next start.
            entries = sorted((e for b in self.node.table.buckets for e in b.entries), key=lambda e: -e.last_seen)
            save_state(self.state_path, self.node.id, [e.node for e in entries])
            self._last_save = self._now()
        except OSError as exc:
            log.warning("cannot save the DHT routing table: %s", exc)

    # -- I/O glue ----------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.node.receive(data, (str(addr[0]), int(addr[1])), self._now())
        self._flush(wake=False)

    def _flush(self, *, wake: bool = True) -> None:
        assert self.endpoint is not None
        for data, addr in self.node.take_datagrams():
            try:
                self.endpoint.send(data, addr)
            except NetError:
                self.send_errors += 1
        for event in self.node.take_events():
            if isinstance(event, LookupDone):
                fut = self._lookups.pop(event.lookup_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(event.lookup)
            elif isinstance(event, PingDone):
                pfut = self._pings.pop(event.request_id, None)
                if pfut is not None and not pfut.done():
                    pfut.set_result(event.node)
            elif isinstance(event, BootstrapDone):
                self._bootstrapped.set()
        if wake:
            # Re-arm the timer only after our own actions; per-datagram wake-ups cost more than
            # they buy (the timer still runs at least once a second).
            self._wake.set()

    async def _timer(self) -> None:
        while True:
            now = self._now()
            wake = self.node.next_wakeup(now)
            delay = 1.0 if wake is None else min(1.0, max(0.005, wake - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = self._now()
            self.node.tick(now)
            self._flush(wake=False)
            if now - self._last_save >= SAVE_EVERY:
                self.save()

    # -- API ---------------------------------------------------------------------------------------
    async def wait_bootstrapped(self, timeout: float = 10.0) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._bootstrapped.wait()
        return self._bootstrapped.is_set()

    async def ping(self, addr: Address, *, timeout: float = 5.0) -> NodeInfo | None:
        request_id = self.node.ping(addr, self._now())
        fut: asyncio.Future[NodeInfo | None] = asyncio.get_running_loop().create_future()
        self._pings[request_id] = fut
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return None
        finally:
            self._pings.pop(request_id, None)

    async def _lookup(self, target: bytes, method: str, timeout: float, **kw: Any) -> Lookup:
        lookup_id = self.node.start_lookup(target, self._now(), method=method, **kw)
        fut: asyncio.Future[Lookup] = asyncio.get_running_loop().create_future()
        self._lookups[lookup_id] = fut
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            running = self.node.lookup(lookup_id)
            if running is None:
                raise
            running.finish(self._now())  # report what was found so far
            return running
        finally:
            self._lookups.pop(lookup_id, None)

    async def find_node(self, target: bytes, *, timeout: float = 20.0) -> Lookup:
        return await self._lookup(target, "find_node", timeout)

    async def get_peers(self, info_hash: bytes, *, timeout: float = 20.0, announce_port: int | None = None,
                        implied_port: bool = False) -> Lookup:
        """Find peers for `info_hash`; with announce_port, also announce us to the closest nodes."""
        return await self._lookup(info_hash, "get_peers", timeout, announce_port=announce_port,
                                  implied_port=implied_port)

    async def put_immutable(self, value: Any, *, timeout: float = 20.0) -> bytes:
        """BEP 44: store a bencodable value at the nodes closest to its SHA-1; returns that target."""
        raw = encode(value)
        if len(raw) > MAX_ITEM:
            raise ValueError(f"a DHT item is at most {MAX_ITEM} bencoded bytes")
        target = hashlib.sha1(raw).digest()
        await self._lookup(target, "get", timeout, put_value=value)
        return target

    async def get_immutable(self, target: bytes, *, timeout: float = 20.0) -> Any:
        """BEP 44: the item stored under `target` (verified against its hash), or None."""
        lookup = await self._lookup(target, "get", timeout)
        return lookup.value

    async def put_mutable(self, seed: bytes, value: Any, *, salt: bytes = b"", seq: int | None = None,
                          cas: int | None = None, timeout: float = 20.0) -> MutableItem:
        """BEP 44: sign `value` with the ed25519 key of `seed` and store it under (key, salt).
        Without `seq`, the newest version in the DHT is read first and ours gets the next number;
        with `cas`, nodes keep it only over that sequence number."""
        if seq is None:
            current = await self.get_mutable(public_key_of(seed), salt=salt, timeout=timeout)
            seq = current.seq + 1 if current is not None else 1
        item = sign(seed, value, seq, salt)
        if not item.valid():
            raise ValueError(f"a DHT item is at most {MAX_ITEM} bencoded bytes with a salt of at most 64")
        await self._lookup(item.target, "get", timeout, put_value=item, put_cas=cas)
        return item

    async def get_mutable(self, public_key: bytes, *, salt: bytes = b"", timeout: float = 20.0) -> MutableItem | None:
        """BEP 44: the newest correctly signed item under (public_key, salt) the lookup met, or None."""
        lookup = await self._lookup(mutable_target(public_key, salt), "get", timeout, salt=salt)
        return lookup.value if isinstance(lookup.value, MutableItem) else None

    async def peers_for(self, info_hash: bytes, *, timeout: float = 20.0, attempts: int = 3) -> list[Address]:
        """Peers for a torrent (a magnet's info-hash): get_peers lookups until one returns peers."""
        for attempt in range(attempts):
            lookup = await self.get_peers(info_hash, timeout=timeout)
            if lookup.peers:
                return sorted(lookup.peers)
            if attempt + 1 < attempts:
                await asyncio.sleep(1.0)
        return []

    def add_node(self, addr: Address) -> None:
        """Contact a node by address (libtorrent's add_dht_node): ask it for our neighbours."""
        self.node.bootstrap([addr], self._now())
        self._flush()

    def stats(self) -> dict[str, Any]:
        now = self._now()
        s = self.node.stats
        return {
            "id": self.node.id.hex(),
            "address": f"{self.address[0]}:{self.address[1]}" if self.endpoint else None,
            "routing_table": {"nodes": len(self.node.table), "buckets": len(self.node.table.buckets),
                              **self.node.table.counts(now)},
            "torrents": len(self.node.peer_store),
            "peers": self.node.peer_store.peer_count(),
            "queries_in": dict(s.queries_in),
            "responses_in": s.responses_in,
            "errors_in": s.errors_in,
            "malformed": s.malformed,
            "rate_limited": s.rate_limited,
            "bad_tokens": s.bad_tokens,
            "unexpected": s.unexpected,
            "timeouts": s.timeouts,
            "sent": s.sent,
            "lookups_running": self.node.lookups_running,
            "external_ip": f"{self.node.external_ip[0]}" if self.node.external_ip else None,
        }
