"""One peer connection: the asyncio adapter around the PeerWire core and the torrent's state.

The loop reads from the socket, feeds the core, acts on its events (serve blocks, record
blocks, ask for more), and flushes what the core wants to send. Any protocol breach ends the
connection; breaches and bad data get the peer banned by the session.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from hivecast.net import Connection, NetError
from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.errors import PeerProtocolError, StorageError
from hivecast.p2p.wire import messages as m
from hivecast.p2p.wire.protocol import PeerWire

if TYPE_CHECKING:
    from hivecast.p2p.session import Torrent

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
MAX_UNREQUESTED_BYTES = 4 * 1024 * 1024


class Peer:
    def __init__(self, torrent: Torrent, conn: Connection, wire: PeerWire, *, outgoing: bool,
                 address: tuple[str, int]) -> None:
        self.torrent = torrent
        self.conn = conn
        self.wire = wire
        self.outgoing = outgoing
        self.address = address  # where it listens (outgoing) or where it came from
        self.listen_port: int | None = address[1] if outgoing else None
        self.connected_at = time.monotonic()
        self.outstanding: dict[tuple[int, int], int] = {}
        # Blocks we stopped waiting for (cancel, choke, timeout): they may still arrive, late.
        self.cancelled: dict[tuple[int, int], None] = {}
        self.raw_bitfield: bytes | None = None
        self.downloaded = 0
        self.uploaded = 0
        self.unrequested = 0
        self.last_piece_at: float | None = None
        self.waiting_since: float | None = None  # oldest moment we had requests out and got nothing
        self.snubbed_until = 0.0
        self.download_rate = 0.0
        self.upload_rate = 0.0
        self._rate_mark = (time.monotonic(), 0, 0)
        self.counted_in_picker = False
        self.metadata_pending: set[int] = set()
        self.closed = False
        self.ban_reason: str | None = None
        self.pex_sent: set[tuple[str, int]] = set()

    @property
    def key(self) -> bytes:
        return self.wire.remote_peer_id or b""

    def update_rates(self, now: float) -> None:
        t0, down0, up0 = self._rate_mark
        dt = max(now - t0, 1e-3)
        self.download_rate = (self.downloaded - down0) / dt
        self.upload_rate = (self.uploaded - up0) / dt
        self._rate_mark = (now, self.downloaded, self.uploaded)

    def flush(self) -> None:
        out = self.wire.data_to_send()
        if out:
            # One buffer per flush: a 13-byte piece header sent on its own (TCP_NODELAY) costs the
            # receiver a packet and a wake-up per block; one memcpy of the batch is far cheaper.
            self.conn.write(b"".join(out) if len(out) > 1 else out[0])

    def greet(self) -> None:
        """Our extension handshake and what we have: the first things after the handshake."""
        t = self.torrent
        self.wire.ext_handshake(metadata_size=len(t.info.raw) if t.info else None,
                                listen_port=t.session.port)
        if t.have is not None:
            self.wire.send_bitfield(t.have)
        elif self.wire.fast:
            self.wire.send_bitfield(Bitfield(0))

    async def run(self) -> None:
        t = self.torrent
        try:
            self.update_interest()
            self.maybe_request()
            self.flush()
            while not self.closed:
                data = await self.conn.read(READ_SIZE, timeout=t.session.idle_timeout)
                if not data:
                    break
                self.wire.receive_data(data)
                for ev in self.wire.events():
                    await self.handle(ev)
                self.maybe_request()
                self.flush()
                # Serve what the peer asked for, pausing whenever the socket is full: requests that
                # pile up meanwhile count against the peer's queue limit (a flood is a breach).
                while self.wire.peer_requests and not self.closed:
                    self.serve()
                    self.flush()
                    await self.conn.drain()
                if self.conn.transport.get_write_buffer_size() > self.conn.limits.write_buffer_high:
                    await self.conn.drain()
        except PeerProtocolError as exc:
            self.ban_reason = str(exc)
            log.info("peer %s broke the protocol: %s", self.address, exc)
        except (NetError, ConnectionError, TimeoutError) as exc:
            log.debug("peer %s: %s", self.address, exc)
        finally:
            self.closed = True
            self.wire.close()

    # -- events --
    async def handle(self, ev: Any) -> None:
        t = self.torrent
        if isinstance(ev, m.Piece):
            await self.on_piece(ev)
        elif isinstance(ev, m.Request):
            self.on_request(ev)
        elif isinstance(ev, m.Have):
            if t.picker is not None:
                self.ensure_counted()
                t.picker.peer_have(ev.index)
            self.update_interest()
        elif isinstance(ev, m.BitfieldMsg | m.HaveAll | m.HaveNone):
            if isinstance(ev, m.BitfieldMsg):
                self.raw_bitfield = ev.data
            self.ensure_counted()
            self.update_interest()
        elif isinstance(ev, m.Unchoke):
            pass
        elif isinstance(ev, m.Choke):
            if not self.wire.fast:
                self.drop_outstanding()
        elif isinstance(ev, m.Reject):
            if self.outstanding.pop((ev.index, ev.begin), None) is not None and t.picker is not None:
                t.picker.request_failed(self, ev.index, ev.begin)
        elif isinstance(ev, m.Interested):
            t.on_interested(self)
        elif isinstance(ev, m.NotInterested):
            # Its upload slot goes to someone who wants data now, not at the next 10 s round.
            self.wire.choke()
            t.fill_upload_slots()
        elif isinstance(ev, m.ExtHandshake):
            if ev.listen_port and not self.outgoing:
                self.listen_port = ev.listen_port
            if t.info is None and ev.metadata_size:
                t.metadata_size_hint(ev.metadata_size)
                self.request_metadata()
        elif isinstance(ev, m.MetadataRequest):
            if t.info is None:
                self.wire.metadata_reject(ev.piece)
            else:
                raw = t.info.raw
                start = ev.piece * m.METADATA_PIECE
                if start >= len(raw):
                    self.wire.metadata_reject(ev.piece)
                else:
                    self.wire.metadata_data(ev.piece, len(raw), raw[start : start + m.METADATA_PIECE])
        elif isinstance(ev, m.MetadataData):
            self.metadata_pending.discard(ev.piece)
            await t.on_metadata_piece(self, ev)
            self.request_metadata()
        elif isinstance(ev, m.MetadataReject):
            self.metadata_pending.discard(ev.piece)
        elif isinstance(ev, m.Pex):
            for addr in ev.added:
                t.add_candidate(addr)

    def ensure_counted(self) -> None:
        t = self.torrent
        if t.picker is None or self.wire.peer_has is None:
            return
        if not self.counted_in_picker:
            if self.raw_bitfield is not None and self.wire.peer_has.count == 0:
                try:
                    self.wire.peer_has = Bitfield.from_bytes(self.raw_bitfield, t.picker.num_pieces)
                except ValueError as exc:
                    raise PeerProtocolError(str(exc)) from None
            t.picker.peer_added(self.wire.peer_has)
            self.counted_in_picker = True

    def update_interest(self) -> None:
        t = self.torrent
        if t.have is None or self.wire.peer_has is None:
            return
        if t.have.complete:
            self.wire.interested(False)
            return
        has = self.wire.peer_has
        want = any(not t.have[i] for i in has) if has.count else False
        self.wire.interested(want)

    def request_metadata(self) -> None:
        t = self.torrent
        if t.info is not None or t.metadata_size is None or self.metadata_pending:
            return
        for piece in t.metadata_missing():
            if self.wire.metadata_request(piece):
                self.metadata_pending.add(piece)
                return

    def maybe_request(self) -> None:
        t = self.torrent
        if t.picker is None or self.wire.peer_choking or not self.wire.am_interested:
            return
        if self.snubbed_until and time.monotonic() < self.snubbed_until:
            return
        depth = t.session.request_queue
        want = depth - len(self.outstanding)
        if want < depth // 4:
            return
        assert self.wire.peer_has is not None
        for index, begin, length in t.picker.pick(self, self.wire.peer_has, want):
            self.outstanding[(index, begin)] = length
            if self.waiting_since is None:
                self.waiting_since = time.monotonic()
            self.wire.request(index, begin, length)

    def forget(self, key: tuple[int, int]) -> None:
        """Stop waiting for a block; if it still comes it is late, not unasked-for."""
        self.outstanding.pop(key, None)
        self.cancelled[key] = None
        if len(self.cancelled) > 4096:
            del self.cancelled[next(iter(self.cancelled))]

    def drop_outstanding(self) -> None:
        t = self.torrent
        if t.picker is not None:
            t.picker.cancel_peer(self)
        for key in list(self.outstanding):
            self.forget(key)
        self.waiting_since = None

    def check_stalled(self, now: float, timeout: float) -> bool:
        """A peer that sits on our requests (claims pieces it never sends) loses them to others."""
        if self.waiting_since is None or not self.outstanding or now - self.waiting_since < timeout:
            return False
        for (index, begin), length in self.outstanding.items():
            self.wire.cancel(index, begin, length)
        self.drop_outstanding()
        self.snubbed_until = now + 2 * timeout
        return True

    async def on_piece(self, ev: m.Piece) -> None:
        t = self.torrent
        length = self.outstanding.pop((ev.index, ev.begin), None)
        if length is None and (ev.index, ev.begin) in self.cancelled:
            del self.cancelled[(ev.index, ev.begin)]
            return  # a block we cancelled, arriving late: normal in endgame
        if length is None or length != len(ev.block) or t.picker is None:
            # Late (after a cancel/endgame) is normal; megabytes nobody asked for is abuse.
            self.unrequested += len(ev.block)
            if self.unrequested > MAX_UNREQUESTED_BYTES:
                raise PeerProtocolError("sent too much data we did not request")
            return
        self.downloaded += len(ev.block)
        t.downloaded += len(ev.block)
        self.last_piece_at = time.monotonic()
        self.waiting_since = self.last_piece_at if self.outstanding else None
        await t.on_block(self, ev.index, ev.begin, ev.block)

    def on_request(self, ev: m.Request) -> None:
        """Check a request; the wire core queued it and serve() answers it."""
        t = self.torrent
        if t.have is None or ev.index not in t.have:
            raise PeerProtocolError(f"requested piece {ev.index} we do not have")
        assert t.info is not None
        if ev.begin + ev.length > t.info.piece_size(ev.index):
            raise PeerProtocolError("request past the end of the piece")

    def serve(self) -> None:
        """Answer queued requests in order until about a write buffer's worth is queued."""
        t = self.torrent
        assert t.storage is not None
        budget = self.conn.limits.write_buffer_high
        for index, begin, length in list(self.wire.peer_requests):
            if budget <= 0:
                break
            try:
                block = t.storage.read_block(index, begin, length)
            except StorageError as exc:
                log.warning("cannot serve piece %d: %s", index, exc)
                self.wire.reject(index, begin, length)
                continue
            if self.wire.piece(index, begin, block):
                self.uploaded += length
                t.uploaded += length
                budget -= length

    async def close(self) -> None:
        self.closed = True
        await self.conn.close(timeout=0.5)
