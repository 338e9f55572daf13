"""The node component for serve/origin roles: runs the DHT server, announces every torrent the node
seeds (from `node.services["torrents"]`, when the BitTorrent service is present) and re-announces on
a timer; `node.services["dht"]` is the `DhtServer` (magnet lookups use `get_peers`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hivecast.dht.ids import Address
from hivecast.dht.node import DhtConfig
from hivecast.dht.server import DhtServer
from hivecast.http import Request, Response
from hivecast.net import AddressInUse

if TYPE_CHECKING:
    from hivecast.events import Subscription
    from hivecast.node.node import Node

log = logging.getLogger(__name__)


def parse_host_port(item: str) -> Address:
    host, _, port = item.rpartition(":")
    return (host.strip("[]"), int(port))


class DhtComponent:
    name = "dht"

    def __init__(self) -> None:
        self.server: DhtServer | None = None
        self.node: Node | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._sub: Subscription | None = None
        self.announced: dict[bytes, float] = {}

    async def start(self, node: Node) -> None:
        cfg = node.settings.dht
        if not cfg.enabled:
            return
        self.node = node
        config = DhtConfig(rate=cfg.query_rate, burst=cfg.query_burst, read_only=cfg.read_only,
                           enforce_bep42=cfg.enforce_bep42)
        state = node.settings.data_dir / "p2p" / "dht.json"
        bootstrap = [parse_host_port(b) for b in cfg.bootstrap_nodes]
        host = node.settings.host
        try:
            self.server = DhtServer(host=host, port=cfg.dht_port, bootstrap=bootstrap, state_path=state, config=config)
            await self.server.start()
        except AddressInUse:
            # Another node on this machine holds the port: take any free one rather than not starting.
            log.warning("DHT port %d is in use; using a free port", cfg.dht_port)
            self.server = DhtServer(host=host, port=0, bootstrap=bootstrap, state_path=state, config=config)
            await self.server.start()
        node.services["dht"] = self.server
        node.services["dht_port"] = self.server.port
        node.router.exact("/dht/stats", self._stats)
        self._sub = node.bus.subscribe("torrent.created")
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._announce_loop(cfg.announce_interval), name="dht-announce"))
        self._tasks.append(loop.create_task(self._on_created(), name="dht-torrent-created"))

    async def _stats(self, request: Request) -> Response:
        """Routing table and traffic figures of the running node (`hivecast dht stats --node URL`)."""
        assert self.server is not None
        figures = self.server.stats()
        figures["announced_torrents"] = len(self.announced)
        return Response.json(figures)

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        if self.server is not None:
            await self.server.stop()

    def _seeded(self) -> tuple[list[bytes], int | None]:
        """Info-hashes the BitTorrent service seeds and its listening port (duck-typed: optional service)."""
        assert self.node is not None
        torrents = self.node.services.get("torrents")
        own = getattr(torrents, "own", None)
        port = self.node.services.get("bt_port")
        if not isinstance(own, dict) or not isinstance(port, int):
            return [], None
        return [h for h in own if isinstance(h, bytes) and len(h) == 20], port

    def _public_ip(self) -> str:
        """The address peers reach our seeder at: the torrents service's public URL, else what DHT
        nodes saw us as (BEP 42 `ip`), else the bind address (loopback for a wildcard bind)."""
        assert self.node is not None and self.server is not None
        public = getattr(self.node.services.get("torrents"), "public_url", None)
        if callable(public):
            with contextlib.suppress(Exception):
                host = urlsplit(str(public())).hostname
                if host:
                    return host
        if self.server.node.external_ip is not None:
            return self.server.node.external_ip[0]
        host = self.node.settings.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    async def announce(self, info_hash: bytes, port: int) -> int:
        """Announce one torrent; returns how many nodes took the announce (tokens held).

        Our own node also lists us for the torrent, so a client that knows only this node (as its
        bootstrap) finds the seeder even before the DHT around it has grown."""
        assert self.server is not None
        self.server.node.peer_store.announce(info_hash, (self._public_ip(), port), self.server._now())
        lookup = await self.server.get_peers(info_hash, announce_port=port)
        self.announced[info_hash] = asyncio.get_running_loop().time()
        return sum(1 for c in lookup.closest() if c.token is not None)

    async def _announce_all(self) -> None:
        hashes, port = self._seeded()
        if port is None:
            return
        for info_hash in hashes:
            with contextlib.suppress(Exception):
                await self.announce(info_hash, port)

    async def _announce_loop(self, interval: float) -> None:
        assert self.server is not None
        await self.server.wait_bootstrapped(timeout=30.0)
        while True:
            await self._announce_all()
            await asyncio.sleep(interval)

    async def _on_created(self) -> None:
        assert self._sub is not None
        async for event in self._sub:
            _, port = self._seeded()
            try:
                info_hash = bytes.fromhex(str(event.data.get("info_hash", "")))
            except ValueError:
                continue
            if port is not None and len(info_hash) == 20:
                with contextlib.suppress(Exception):
                    await self.announce(info_hash, port)
