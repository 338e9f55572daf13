"""The peer engine's asyncio side: a Session listens for peers and runs Torrents.

A Torrent owns its storage, piece picker, peers and timers (tracker announces, the choker, new
connections). Everything runs on one event loop, libtorrent-style: cores are plain objects
mutated only from the loop; SHA-1 of whole pieces and resume checks run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivecast.net import Connection, ConnectionLimits, NetError, TcpServer, connect, open_udp
from hivecast.p2p import choker
from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.errors import MetainfoError, P2PError, PeerProtocolError, TrackerError
from hivecast.p2p.httpclient import http_get
from hivecast.p2p.metainfo import InfoDict, Metainfo, parse_info
from hivecast.p2p.peer import Peer
from hivecast.p2p.picker import PiecePicker
from hivecast.p2p.storage import Storage
from hivecast.p2p.tracker import http as tracker_http
from hivecast.p2p.tracker import udp as tracker_udp
from hivecast.p2p.webseed import WebSeed
from hivecast.p2p.wire import messages as m
from hivecast.p2p.wire.protocol import PeerWire, WireLimits

log = logging.getLogger(__name__)

CLIENT_PREFIX = b"-HC0100-"


def make_peer_id() -> bytes:
    return CLIENT_PREFIX + os.urandom(12)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    host: str = "127.0.0.1"
    port: int = 0
    max_peers_per_torrent: int = 60
    upload_slots: int = 8
    request_queue: int = 128
    idle_timeout: float = 120.0
    handshake_timeout: float = 10.0
    connect_timeout: float = 5.0
    announce_numwant: int = 50
    request_timeout: float = 20.0
    choke_interval: float = choker.ROUND_SECONDS  # one choke round (and ut_pex message) per interval
    wire: WireLimits = field(default_factory=WireLimits)


def ban_key(ip: str, peer_id: bytes | None) -> Any:
    """What a ban sticks to: the address, except on loopback where every test peer shares one."""
    try:
        if ipaddress.ip_address(ip).is_loopback:
            return (ip, peer_id)
    except ValueError:
        pass
    return ip


class Session:
    def __init__(self, options: SessionOptions | None = None, *, peer_id: bytes | None = None) -> None:
        self.options = options or SessionOptions()
        self.peer_id = peer_id or make_peer_id()
        self.torrents: dict[bytes, Torrent] = {}
        # Insertion-ordered and capped: a flood of fresh identities cannot grow it without bound.
        self.banned: dict[Any, None] = {}
        self.max_bans = 10_000
        limits = ConnectionLimits(
            max_connections=4096, idle_timeout=self.options.idle_timeout, read_buffer=512 * 1024,
            write_buffer_high=1024 * 1024, write_buffer_max=16 * 1024 * 1024,
            connect_timeout=self.options.connect_timeout,
        )
        self.limits = limits
        self.server = TcpServer(self._incoming, host=self.options.host, port=self.options.port,
                                limits=limits, name="bittorrent")
        self._started = False

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def idle_timeout(self) -> float:
        return self.options.idle_timeout

    @property
    def request_queue(self) -> int:
        return self.options.request_queue

    async def start(self) -> None:
        await self.server.start()
        self._started = True

    async def close(self) -> None:
        for t in list(self.torrents.values()):
            await t.stop()
        self.torrents.clear()
        if self._started:
            await self.server.close(grace=0.5)
            self._started = False

    def ban(self, peer: Peer, reason: str) -> None:
        log.warning("banning peer %s: %s", peer.address, reason)
        keys = [ban_key(peer.conn.peer[0], peer.wire.remote_peer_id), ban_key(peer.address[0], peer.wire.remote_peer_id)]
        if peer.listen_port:
            keys.append((peer.address[0], peer.listen_port))
        for key in keys:
            self.banned[key] = None
        while len(self.banned) > self.max_bans:
            del self.banned[next(iter(self.banned))]

    def is_banned(self, ip: str, peer_id: bytes | None, port: int | None = None) -> bool:
        return ban_key(ip, peer_id) in self.banned or (port is not None and (ip, port) in self.banned)

    async def add(self, torrent: Torrent) -> Torrent:
        if torrent.info_hash in self.torrents:
            raise ValueError("torrent already in the session")
        self.torrents[torrent.info_hash] = torrent
        torrent.session = self
        await torrent.start()
        return torrent

    async def remove(self, info_hash: bytes) -> None:
        t = self.torrents.pop(info_hash, None)
        if t is not None:
            await t.stop()

    async def _incoming(self, conn: Connection) -> None:
        wire = PeerWire(info_hash=None, peer_id=self.peer_id, num_pieces=None, limits=self.options.wire)
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                hs = await _read_handshake(conn, wire)
        except (TimeoutError, PeerProtocolError, NetError):
            return
        torrent = self.torrents.get(hs.info_hash)
        if torrent is None or hs.peer_id == self.peer_id or self.is_banned(conn.peer[0], hs.peer_id):
            return
        wire.info_hash = hs.info_hash
        if torrent.info is not None:
            wire.set_num_pieces(torrent.info.num_pieces)
        wire.send_handshake()
        await torrent.run_peer(conn, wire, outgoing=False, address=conn.peer)


async def _read_handshake(conn: Connection, wire: PeerWire) -> m.Handshake:
    while True:
        data = await conn.read(65536)
        if not data:
            raise PeerProtocolError("closed during handshake")
        wire.receive_data(data)
        if wire.handshake is not None:
            return wire.handshake


class Torrent:
    """One torrent in a session: seeding (storage complete) or downloading (from .torrent or magnet)."""

    def __init__(
        self, *, info_hash: bytes, base_dir: Path, info: InfoDict | None = None, trackers: list[str] | None = None,
        peers: list[tuple[str, int]] | None = None, seed_only: bool = False, trust_complete: bool = False,
        announce_interval_floor: float = 1.0, on_progress: Callable[[Torrent], None] | None = None,
        web_seeds: list[str] | None = None,
    ) -> None:
        self.info_hash = info_hash
        self.base_dir = Path(base_dir)
        self.info: InfoDict | None = None
        self.trackers = list(trackers or [])
        self.web_seeds = [WebSeed(u) for u in web_seeds or [] if u.startswith("http://")]
        self.web_downloaded = 0
        self.candidates: dict[tuple[str, int], float] = {}
        for p in peers or []:
            self.candidates[p] = 0.0
        self.seed_only = seed_only
        self.trust_complete = trust_complete
        self.announce_floor = announce_interval_floor
        self.on_progress = on_progress
        self.session: Session = None  # type: ignore[assignment]  # set by Session.add
        self.storage: Storage | None = None
        self.picker: PiecePicker | None = None
        self.have: Bitfield | None = None
        self.peers: dict[bytes, Peer] = {}
        self.connecting: set[tuple[str, int]] = set()
        self.uploaded = 0
        self.downloaded = 0
        self.buffers: dict[int, bytearray] = {}
        self.contributors: dict[int, dict[int, Peer | WebSeed]] = {}
        self.failed_blocks: dict[int, dict[int, tuple[bytes, Any]]] = {}
        self.hash_failures = 0
        self.metadata_size: int | None = None
        self._metadata_pieces: dict[int, bytes] = {}
        self.completed = asyncio.Event()
        self.metadata_ready = asyncio.Event()
        self.stopped = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._choker_state = choker.ChokerState()
        self._verifying: set[int] = set()
        self.error: str | None = None
        if info is not None:
            self._set_info(info)

    @classmethod
    def from_metainfo(cls, meta: Metainfo, base_dir: Path, **kw: Any) -> Torrent:
        trackers = list(kw.pop("trackers", None) or meta.trackers)
        seeds = list(kw.pop("web_seeds", None) or meta.url_list)
        return cls(info_hash=meta.info.info_hash, base_dir=base_dir, info=meta.info, trackers=trackers,
                   web_seeds=seeds, **kw)

    # -- metadata --
    def _set_info(self, info: InfoDict) -> None:
        self.info = info
        self.storage = Storage(info, self.base_dir, read_only=self.seed_only)
        self.picker = PiecePicker(info.num_pieces, info.piece_length, info.total_length)
        self.have = self.picker.have
        self.metadata_size = len(info.raw)
        self.metadata_ready.set()

    def metadata_size_hint(self, size: int) -> None:
        if self.metadata_size is None:
            self.metadata_size = size

    def metadata_missing(self) -> list[int]:
        if self.metadata_size is None:
            return []
        n = (self.metadata_size + m.METADATA_PIECE - 1) // m.METADATA_PIECE
        return [i for i in range(n) if i not in self._metadata_pieces]

    async def on_metadata_piece(self, peer: Peer, ev: m.MetadataData) -> None:
        if self.info is not None or self.metadata_size is None:
            return
        if ev.total_size != self.metadata_size or ev.piece * m.METADATA_PIECE >= self.metadata_size:
            raise PeerProtocolError("ut_metadata piece does not fit the announced size")
        self._metadata_pieces[ev.piece] = ev.data
        if self.metadata_missing():
            return
        raw = b"".join(self._metadata_pieces[i] for i in sorted(self._metadata_pieces))
        self._metadata_pieces.clear()
        if hashlib.sha1(raw).digest() != self.info_hash:
            self.metadata_size = None
            raise PeerProtocolError("metadata does not match the info-hash")
        try:
            info = parse_info(raw)
        except MetainfoError as exc:
            raise PeerProtocolError(f"bad metadata: {exc}") from None
        self._set_info(info)
        await self._after_info()
        for p in list(self.peers.values()):
            if p.wire.num_pieces is None:
                p.wire.set_num_pieces(info.num_pieces)
            p.ensure_counted()
            p.update_interest()
            p.maybe_request()
            p.flush()

    async def _after_info(self) -> None:
        assert self.storage is not None and self.picker is not None and self.info is not None
        if self.trust_complete:
            for i in range(self.info.num_pieces):
                self.picker.mark_have(i)
        else:
            found = await self.storage.check_existing_async()
            for i in found:
                self.picker.mark_have(i)
        if self.have is not None and self.have.complete:
            await asyncio.to_thread(self._finish_files)
            self.completed.set()

    def _finish_files(self) -> None:
        if self.storage is not None and not self.seed_only:
            self.storage.sync_sizes()

    # -- life cycle --
    async def start(self) -> None:
        if self.info is not None:
            await self._after_info()
        self._spawn(self._connect_loop(), "connect")
        self._spawn(self._choke_loop(), "choke")
        if self.trackers:
            self._spawn(self._announce_loop(), "announce")
        if self.web_seeds and not self.seed_only:
            self._spawn(self._web_seed_loop(), "webseed")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"torrent-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.trackers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._announce_all("stopped")
        for task in list(self._tasks):
            task.cancel()
        for p in list(self.peers.values()):
            await p.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self.storage is not None:
            self.storage.close()

    @property
    def left(self) -> int:
        if self.info is None or self.have is None:
            return 1
        return sum(self.info.piece_size(i) for i in self.have.missing())

    @property
    def progress(self) -> float:
        if self.have is None or self.have.size == 0:
            return 1.0 if self.have is not None else 0.0
        return self.have.count / self.have.size

    def set_playback_position(self, byte_offset: int, *, window_bytes: int = 8 * 1024 * 1024) -> None:
        """Streaming: the pieces just after the playhead are fetched first, in order (strict priority)."""
        if self.info is None or self.picker is None:
            return
        first = max(0, byte_offset) // self.info.piece_length
        count = max(1, window_bytes // self.info.piece_length)
        self.picker.set_priority(list(range(first, min(first + count, self.info.num_pieces))))
        for p in self.peers.values():
            p.maybe_request()
            with contextlib.suppress(NetError):
                p.flush()

    # -- peers --
    def add_candidate(self, addr: tuple[str, int]) -> None:
        if len(self.candidates) < 2000 and addr not in self.candidates:
            self.candidates[addr] = 0.0

    def connect_peer(self, addr: tuple[str, int]) -> None:
        self.candidates[addr] = 0.0
        self._spawn(self._connect(addr), "peer-out")

    def _connected_addresses(self) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for p in self.peers.values():
            out.add(p.address)
            if p.listen_port:
                out.add((p.address[0], p.listen_port))
        return out

    async def _connect_loop(self) -> None:
        while True:
            now = time.monotonic()
            for p in list(self.peers.values()):
                if p.check_stalled(now, self.session.options.request_timeout):
                    log.info("peer %s sat on our requests; asking others", p.address)
                    for other in self.peers.values():
                        other.maybe_request()
                        with contextlib.suppress(NetError):
                            other.flush()
            if self.have is None or not self.have.complete or self.info is None:
                now = time.monotonic()
                connected = self._connected_addresses()
                own = ("127.0.0.1", self.session.port)
                for addr, retry_at in list(self.candidates.items()):
                    if len(self.peers) + len(self.connecting) >= self.session.options.max_peers_per_torrent:
                        break
                    if addr in connected or addr in self.connecting or retry_at > now or addr == own:
                        continue
                    if self.session.is_banned(addr[0], None, addr[1]):
                        continue
                    self.candidates[addr] = now + 30.0
                    self._spawn(self._connect(addr), "peer-out")
            await asyncio.sleep(0.5)

    async def _connect(self, addr: tuple[str, int]) -> None:
        if addr in self.connecting:
            return
        self.connecting.add(addr)
        try:
            try:
                conn = await connect(addr[0], addr[1], limits=self.session.limits,
                                     timeout=self.session.options.connect_timeout)
            except NetError:
                return
            wire = PeerWire(info_hash=self.info_hash, peer_id=self.session.peer_id,
                            num_pieces=self.info.num_pieces if self.info else None,
                            limits=self.session.options.wire)
            try:
                wire.send_handshake()
                conn.write(b"".join(wire.data_to_send()))
                async with asyncio.timeout(self.session.options.handshake_timeout):
                    hs = await _read_handshake(conn, wire)
            except (TimeoutError, PeerProtocolError, NetError):
                await conn.close()
                return
            if hs.peer_id == self.session.peer_id or self.session.is_banned(addr[0], hs.peer_id, addr[1]):
                await conn.close()
                return
        finally:
            self.connecting.discard(addr)
        await self.run_peer(conn, wire, outgoing=True, address=addr)

    async def run_peer(self, conn: Connection, wire: PeerWire, *, outgoing: bool, address: tuple[str, int]) -> None:
        pid = wire.remote_peer_id or b""
        if pid in self.peers or self.stopped:
            await conn.close()
            return
        if len(self.peers) >= self.session.options.max_peers_per_torrent:
            await conn.close()
            return
        peer = Peer(self, conn, wire, outgoing=outgoing, address=address)
        self.peers[pid] = peer
        try:
            # Messages that arrived with the handshake.
            pending = wire.events()
            runner = self._peer_main(peer, pending)
            await runner
        finally:
            self.peers.pop(pid, None)
            if not peer.wire.am_choking and not self.stopped:
                self.fill_upload_slots()
            if self.picker is not None:
                self.picker.cancel_peer(peer)
                if peer.counted_in_picker and peer.wire.peer_has is not None:
                    self.picker.peer_removed(peer.wire.peer_has)
            if peer.ban_reason:
                self.session.ban(peer, peer.ban_reason)
            await conn.close(timeout=0.5)

    async def _peer_main(self, peer: Peer, pending: list[Any]) -> None:
        peer.greet()
        try:
            for ev in pending:
                await peer.handle(ev)
        except PeerProtocolError as exc:
            peer.ban_reason = str(exc)
            return
        await peer.run()

    def fill_upload_slots(self) -> None:
        """Unchoke waiting interested peers into free slots (a peer left or lost interest)."""
        free = self.session.options.upload_slots - sum(1 for p in self.peers.values() if not p.wire.am_choking)
        waiting = [p for p in self.peers.values() if p.wire.am_choking and p.wire.peer_interested and not p.closed]
        random.shuffle(waiting)
        for p in waiting[: max(0, free)]:
            p.wire.unchoke()
            with contextlib.suppress(NetError):
                p.flush()

    def on_interested(self, peer: Peer) -> None:
        unchoked = sum(1 for p in self.peers.values() if not p.wire.am_choking)
        # Fill free slots at once instead of waiting for the next 10 s round.
        if peer.wire.am_choking and unchoked < self.session.options.upload_slots:
            peer.wire.unchoke()

    async def _choke_loop(self) -> None:
        rng = random.Random()
        while True:
            await asyncio.sleep(self.session.options.choke_interval)
            now = time.monotonic()
            stats = []
            for p in self.peers.values():
                p.update_rates(now)
                stats.append(choker.PeerStats(
                    key=p, interested=p.wire.peer_interested, download_rate=p.download_rate,
                    upload_rate=p.upload_rate, last_piece_received=p.last_piece_at,
                    unchoking_us=not p.wire.peer_choking, connected_at=p.connected_at,
                ))
            seeding = self.have is not None and self.have.complete
            unchoke, self._choker_state = choker.choke_round(
                stats, self._choker_state, now=now, seeding=seeding, slots=self.session.options.upload_slots,
                rng=rng)
            keep_alive = self._choker_state.round % 6 == 0  # about once a minute
            for p in list(self.peers.values()):
                if p in unchoke:
                    p.wire.unchoke()
                else:
                    p.wire.choke()
                if keep_alive:
                    p.wire.keep_alive()
                with contextlib.suppress(NetError):
                    p.flush()
            self._send_pex()

    def _send_pex(self) -> None:
        addrs = [(p.address[0], p.listen_port) for p in self.peers.values() if p.listen_port]
        for p in self.peers.values():
            new = [(ip, port) for ip, port in addrs if (ip, port) not in p.pex_sent
                   and (ip, port) != (p.address[0], p.listen_port)]
            if new and p.wire.pex(new, []):
                p.pex_sent.update(new)
                with contextlib.suppress(NetError):
                    p.flush()

    # -- web seeds --
    def _pieces_for_web_seed(self) -> Bitfield | None:
        """Missing pieces no connected peer has; all missing ones if no peer is unchoking us."""
        if self.picker is None or self.have is None or self.have.complete:
            return None
        feeding = any(not p.wire.peer_choking and p.wire.am_interested for p in self.peers.values())
        wanted = Bitfield(self.have.size)
        for i in self.have.missing():
            if not feeding or self.picker.availability[i] == 0:
                wanted.add(i)
        return wanted if wanted.count else None

    async def _web_seed_loop(self) -> None:
        await self.metadata_ready.wait()
        assert self.info is not None and self.storage is not None
        while not self.completed.is_set():
            wanted = self._pieces_for_web_seed()
            now = time.monotonic()
            seeds = [w for w in self.web_seeds if w.retry_at <= now]
            if wanted is None or not seeds or self.picker is None:
                await asyncio.sleep(1.0)
                continue
            ws = seeds[0]
            blocks = self.picker.pick(ws, wanted, max(1, self.info.piece_length // self.picker.block_size))
            if not blocks:
                await asyncio.sleep(1.0)
                continue
            try:
                for index, begin, length in blocks:
                    block = await ws.fetch(self.info, self.storage.layout, index, begin, length)
                    self.downloaded += length
                    self.web_downloaded += length
                    await self.on_block(ws, index, begin, block)
                ws.failures = 0
            except (P2PError, OSError) as exc:
                log.info("%s", exc)
                self.picker.cancel_peer(ws)
                ws.failures += 1
                ws.retry_at = time.monotonic() + min(60.0, 2.0**ws.failures)

    # -- data --
    async def on_block(self, peer: Peer | WebSeed, index: int, begin: int, block: bytes) -> None:
        picker, info = self.picker, self.info
        assert picker is not None and info is not None
        if self.have is not None and index in self.have:
            return
        buf = self.buffers.get(index)
        if buf is None:
            buf = self.buffers[index] = bytearray(info.piece_size(index))
        if begin + len(block) > len(buf):
            raise PeerProtocolError("block past the end of the piece")
        buf[begin : begin + len(block)] = block
        self.contributors.setdefault(index, {})[begin] = peer
        if not picker.block_received(index, begin) or index in self._verifying:
            return
        # Endgame: others may still hold requests for this piece's blocks; cancel them.
        for other in self.peers.values():
            for (i, b), length in list(other.outstanding.items()):
                if i == index:
                    other.forget((i, b))
                    other.wire.cancel(i, b, length)
        self._verifying.add(index)
        data = self.buffers.pop(index)
        contributors = self.contributors.pop(index, {})
        assert self.storage is not None
        try:
            ok = await asyncio.to_thread(self.storage.write_if_valid, index, data)
        finally:
            self._verifying.discard(index)
        if ok:
            self._piece_passed(index, data)
        else:
            self._piece_failed(index, data, contributors)

    def _piece_passed(self, index: int, data: bytearray) -> None:
        assert self.picker is not None and self.have is not None
        self.picker.mark_have(index)
        # Smart ban: now that the true data is known, whoever sent a different block before lied.
        failed = self.failed_blocks.pop(index, None)
        if failed:
            for begin, (digest, liar) in failed.items():
                good = hashlib.sha1(data[begin : begin + self.picker.block_size]).digest()
                if digest != good and isinstance(liar, Peer):
                    liar.ban_reason = "sent corrupt data"
                    self.session.ban(liar, "sent corrupt data")
                    liar.closed = True
                    liar.conn.abort()
        for p in self.peers.values():
            p.wire.have(index)
            p.update_interest()
            with contextlib.suppress(NetError):
                p.flush()
        if self.on_progress is not None:
            self.on_progress(self)
        if self.have.complete and not self.completed.is_set():
            self._finish_files()
            self.completed.set()
            if self.trackers:
                self._spawn(self._announce_all("completed"), "announce-done")

    def _piece_failed(self, index: int, data: bytearray, contributors: dict[int, Peer | WebSeed]) -> None:
        assert self.picker is not None
        self.hash_failures += 1
        log.warning("piece %d failed its hash check", index)
        self.picker.piece_failed(index)
        senders = set(contributors.values())
        if len(senders) == 1 and isinstance(only := next(iter(senders)), WebSeed):
            only.failures += 1
            only.retry_at = time.monotonic() + 60.0  # a web seed with wrong bytes: leave it alone a while
            return
        if len(senders) == 1:
            liar = senders.pop()
            assert isinstance(liar, Peer)
            liar.ban_reason = "sent a piece that failed its hash"
            self.session.ban(liar, liar.ban_reason)
            liar.closed = True
            liar.conn.abort()
            return
        record = self.failed_blocks.setdefault(index, {})
        for begin, peer in contributors.items():
            block = data[begin : begin + self.picker.block_size]
            record[begin] = (hashlib.sha1(block).digest(), peer)

    # -- trackers --
    async def _announce_loop(self) -> None:
        event = "started"
        while True:
            interval = await self._announce_all(event)
            event = ""
            await asyncio.sleep(max(self.announce_floor, min(interval, 1800)))

    async def _announce_all(self, event: str) -> float:
        interval = 1800.0
        for url in self.trackers:
            try:
                async with asyncio.timeout(10):
                    got, peers = await self._announce(url, event)
                interval = min(interval, got)
                for addr in peers:
                    self.add_candidate(addr)
            except (TrackerError, NetError, TimeoutError, OSError) as exc:
                log.info("announce to %s failed: %s", url, exc)
                interval = min(interval, 30.0)
        return interval

    async def _announce(self, url: str, event: str) -> tuple[int, list[tuple[str, int]]]:
        if url.startswith("udp://"):
            return await self._announce_udp(url, event)
        target = tracker_http.announce_url(
            url, info_hash=self.info_hash, peer_id=self.session.peer_id, port=self.session.port,
            uploaded=self.uploaded, downloaded=self.downloaded, left=self.left, event=event,
            numwant=self.session.options.announce_numwant)
        return tracker_http.parse_announce_response(await http_get(target))

    async def _announce_udp(self, url: str, event: str) -> tuple[int, list[tuple[str, int]]]:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise TrackerError(f"bad UDP tracker URL {url}")
        ep = await open_udp("127.0.0.1" if parts.hostname in ("127.0.0.1", "localhost") else "0.0.0.0", 0,
                            remote=(parts.hostname, parts.port))
        try:
            txid = random.getrandbits(32)
            ep.send(tracker_udp.connect_request(txid))
            data, _ = await ep.recv(timeout=5)
            if len(data) < 16 or struct.unpack_from(">II", data) != (tracker_udp.CONNECT, txid):
                raise TrackerError("bad UDP connect reply")
            (cid,) = struct.unpack_from(">Q", data, 8)
            txid = random.getrandbits(32)
            ev = {"": 0, "completed": 1, "started": 2, "stopped": 3}[event]
            ep.send(tracker_udp.announce_request(
                cid, txid, info_hash=self.info_hash, peer_id=self.session.peer_id, port=self.session.port,
                left=self.left, downloaded=self.downloaded, uploaded=self.uploaded, event=ev,
                numwant=self.session.options.announce_numwant))
            data, _ = await ep.recv(timeout=5)
            action, rtx = struct.unpack_from(">II", data)
            if rtx != txid or action != tracker_udp.ANNOUNCE or len(data) < 20:
                raise TrackerError(data[8:].decode("utf-8", "replace") if action == tracker_udp.ERROR
                                   else "bad UDP announce reply")
            (interval,) = struct.unpack_from(">I", data, 8)
            return interval, m.parse_compact_peers(data[20:])
        finally:
            ep.close()
