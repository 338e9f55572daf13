"""The peer wire state machine, sans I/O: feed bytes with receive_data(), take events, send bytes.

It enforces what any peer may not do: messages longer than the limit, malformed fixed-size
messages, piece indices out of range, a bitfield anywhere but first, fast-extension messages
without having negotiated it, and request floods. Each breach raises PeerProtocolError; the
adapter drops the connection and bans the address.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

from hivecast.p2p import bencode
from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.errors import BencodeError, PeerProtocolError
from hivecast.p2p.wire import messages as m

_U32 = struct.Struct(">I")
_III = struct.Struct(">III")
_II = struct.Struct(">II")


@dataclass(frozen=True, slots=True)
class WireLimits:
    max_message: int = 1024 * 1024 + 13
    max_request_length: int = 128 * 1024
    # What we advertise as `reqq`: enough blocks in flight to fill a fast link (libtorrent uses 2000).
    max_peer_requests: int = 2000
    max_extended: int = 1024 * 1024
    max_pex_entries: int = 200


class State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class PeerWire:
    """One connection's protocol state.

    `num_pieces` may be None until the metadata is known (magnet links); range checks apply once
    it is set with `set_num_pieces`.
    """

    def __init__(
        self, *, info_hash: bytes | None, peer_id: bytes, num_pieces: int | None,
        limits: WireLimits | None = None, fast: bool = True, extended: bool = True,
    ) -> None:
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.num_pieces = num_pieces
        self.limits = limits or WireLimits()
        self.state = State.HANDSHAKE
        self._buf = bytearray()
        self._events: list[m.Message | m.Handshake] = []
        self._out: list[bytes | memoryview] = []
        self._local_reserved = m.reserved_bytes(fast=fast, extended=extended)
        self.fast = False
        self.extended = False
        self.remote_peer_id: bytes | None = None
        self.handshake: m.Handshake | None = None
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_has: Bitfield | None = Bitfield(num_pieces) if num_pieces is not None else None
        self.peer_has_all = False
        self.remote_ext: dict[str, int] = {}
        self.remote_metadata_size: int | None = None
        # Requests the peer made that we have not served yet (flood control counts these).
        self.peer_requests: dict[tuple[int, int, int], None] = {}
        self._messages_seen = 0
        self.handshake_sent = False

    # -- setup --
    def set_num_pieces(self, n: int) -> None:
        self.num_pieces = n
        bf = Bitfield(n, full=self.peer_has_all)
        self.peer_has = bf

    def send_handshake(self, info_hash: bytes | None = None) -> None:
        if info_hash is not None:
            self.info_hash = info_hash
        assert self.info_hash is not None
        self._out.append(m.handshake(self.info_hash, self.peer_id, self._local_reserved))
        self.handshake_sent = True

    # -- input --
    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._buf += data
        buf = self._buf
        pos = 0
        if self.state is State.HANDSHAKE:
            if len(buf) < m.HANDSHAKE_LENGTH:
                if len(buf) >= 20 and buf[:20] != bytes([19]) + m.PROTOCOL:
                    raise PeerProtocolError("not a BitTorrent handshake")
                return
            if buf[:20] != bytes([19]) + m.PROTOCOL:
                raise PeerProtocolError("not a BitTorrent handshake")
            reserved = bytes(buf[20:28])
            info_hash = bytes(buf[28:48])
            peer_id = bytes(buf[48:68])
            if self.info_hash is not None and info_hash != self.info_hash:
                raise PeerProtocolError("handshake for another torrent")
            self.fast = bool(reserved[m.FAST_BYTE] & m.FAST_BIT & self._local_reserved[m.FAST_BYTE])
            self.extended = bool(reserved[m.EXT_BYTE] & m.EXT_BIT & self._local_reserved[m.EXT_BYTE])
            self.remote_peer_id = peer_id
            self.state = State.OPEN
            self.handshake = m.Handshake(reserved, info_hash, peer_id)
            self._events.append(self.handshake)
            pos = m.HANDSHAKE_LENGTH
        n = len(buf)
        limit = self.limits.max_message
        while n - pos >= 4:
            (length,) = _U32.unpack_from(buf, pos)
            if length > limit:
                raise PeerProtocolError(f"message of {length} bytes is over the {limit}-byte limit")
            if n - pos - 4 < length:
                break
            start = pos + 4
            pos = start + length
            if length == 0:
                self._events.append(m.KeepAlive())
                continue
            self._message(buf[start], memoryview(buf)[start + 1 : pos], length - 1)
        if pos:
            del buf[:pos]

    def _need(self, size: int, want: int, name: str) -> None:
        if size != want:
            raise PeerProtocolError(f"{name} message with {size}-byte payload (want {want})")

    def _index(self, index: int, name: str) -> None:
        if self.num_pieces is not None and index >= self.num_pieces:
            raise PeerProtocolError(f"{name} for piece {index} of {self.num_pieces}")

    def _message(self, msg_id: int, body: memoryview, size: int) -> None:
        # The extension handshake may come before the bitfield (libtorrent sends it first), so
        # "first message" counts only the core protocol's messages.
        first = self._messages_seen == 0
        if msg_id != m.EXTENDED:
            self._messages_seen += 1
        ev = self._events
        if msg_id == m.PIECE:
            if size < 8:
                raise PeerProtocolError("short piece message")
            index, begin = _II.unpack_from(body, 0)
            self._index(index, "piece")
            ev.append(m.Piece(index, begin, bytes(body[8:])))
        elif msg_id == m.REQUEST or msg_id == m.CANCEL or msg_id == m.REJECT:
            self._need(size, 12, "request")
            index, begin, length = _III.unpack_from(body, 0)
            self._index(index, "request")
            if length == 0 or length > self.limits.max_request_length:
                raise PeerProtocolError(f"request of {length} bytes")
            if msg_id == m.REQUEST:
                self._on_request(index, begin, length)
            elif msg_id == m.CANCEL:
                self.peer_requests.pop((index, begin, length), None)
                ev.append(m.Cancel(index, begin, length))
            else:
                self._need_fast("reject")
                ev.append(m.Reject(index, begin, length))
        elif msg_id == m.HAVE:
            self._need(size, 4, "have")
            (index,) = _U32.unpack_from(body, 0)
            self._index(index, "have")
            if self.peer_has is not None:
                self.peer_has.add(index)
            ev.append(m.Have(index))
        elif msg_id in (m.CHOKE, m.UNCHOKE, m.INTERESTED, m.NOT_INTERESTED, m.HAVE_ALL, m.HAVE_NONE):
            self._need(size, 0, "state")
            if msg_id == m.CHOKE:
                self.peer_choking = True
                ev.append(m.Choke())
            elif msg_id == m.UNCHOKE:
                self.peer_choking = False
                ev.append(m.Unchoke())
            elif msg_id == m.INTERESTED:
                self.peer_interested = True
                ev.append(m.Interested())
            elif msg_id == m.NOT_INTERESTED:
                self.peer_interested = False
                ev.append(m.NotInterested())
            else:
                self._need_fast("have all/none")
                if not first:
                    raise PeerProtocolError("have all/none after the first message")
                if msg_id == m.HAVE_ALL:
                    self.peer_has_all = True
                    if self.num_pieces is not None:
                        self.peer_has = Bitfield(self.num_pieces, full=True)
                    ev.append(m.HaveAll())
                else:
                    ev.append(m.HaveNone())
        elif msg_id == m.BITFIELD:
            if not first:
                raise PeerProtocolError("bitfield after the first message")
            data = bytes(body)
            if self.num_pieces is not None:
                try:
                    self.peer_has = Bitfield.from_bytes(data, self.num_pieces)
                except ValueError as exc:
                    raise PeerProtocolError(str(exc)) from None
            elif len(data) > self.limits.max_message:
                raise PeerProtocolError("bitfield too long")
            ev.append(m.BitfieldMsg(data))
        elif msg_id == m.PORT:
            self._need(size, 2, "port")
            ev.append(m.Port(struct.unpack_from(">H", body, 0)[0]))
        elif msg_id == m.SUGGEST or msg_id == m.ALLOWED_FAST:
            self._need_fast("suggest/allowed fast")
            self._need(size, 4, "suggest/allowed fast")
            (index,) = _U32.unpack_from(body, 0)
            self._index(index, "suggest")
            ev.append(m.Suggest(index) if msg_id == m.SUGGEST else m.AllowedFast(index))
        elif msg_id == m.EXTENDED:
            if not self.extended:
                raise PeerProtocolError("extended message without BEP 10 negotiated")
            if size < 1 or size > self.limits.max_extended:
                raise PeerProtocolError("extended message of bad size")
            self._extended(body[0], bytes(body[1:]))
        # Unknown message ids are ignored, as BEP 3 asks.

    def _need_fast(self, what: str) -> None:
        if not self.fast:
            raise PeerProtocolError(f"{what} without the fast extension negotiated")

    def _on_request(self, index: int, begin: int, length: int) -> None:
        if self.am_choking:
            # BEP 6: a choked peer's requests are rejected; without it they are silently dropped.
            if self.fast:
                self._out.append(m.request(m.REJECT, index, begin, length))
            return
        if len(self.peer_requests) >= self.limits.max_peer_requests:
            if self.fast and len(self.peer_requests) < 2 * self.limits.max_peer_requests:
                self._out.append(m.request(m.REJECT, index, begin, length))
                return
            raise PeerProtocolError("request flood: too many outstanding requests")
        self.peer_requests[(index, begin, length)] = None
        self._events.append(m.Request(index, begin, length))

    def _extended(self, ext_id: int, payload: bytes) -> None:
        ev = self._events
        try:
            if ext_id == 0:
                d = bencode.decode(payload, max_depth=8)
                if not isinstance(d, dict):
                    raise PeerProtocolError("extension handshake is not a dictionary")
                ids: dict[str, int] = {}
                mm = d.get(b"m")
                if isinstance(mm, dict):
                    for k, v in mm.items():
                        if isinstance(v, int) and 0 <= v < 256:
                            ids[k.decode("utf-8", "replace")] = v
                self.remote_ext.update(ids)
                for k, v in ids.items():
                    if v == 0:
                        self.remote_ext.pop(k, None)
                size = d.get(b"metadata_size")
                if isinstance(size, int) and 0 < size <= 32 * 1024 * 1024:
                    self.remote_metadata_size = size
                client = d.get(b"v")
                p = d.get(b"p")
                reqq = d.get(b"reqq")
                ev.append(m.ExtHandshake(
                    ids, self.remote_metadata_size,
                    client.decode("utf-8", "replace") if isinstance(client, bytes) else None,
                    p if isinstance(p, int) and 0 < p < 65536 else None,
                    reqq if isinstance(reqq, int) and reqq > 0 else None,
                ))
            elif ext_id == m.UT_METADATA_ID:
                d, end = bencode.decode_prefix(payload, max_depth=4)
                if not isinstance(d, dict):
                    raise PeerProtocolError("ut_metadata message is not a dictionary")
                mt, piece = d.get(b"msg_type"), d.get(b"piece")
                if not isinstance(mt, int) or not isinstance(piece, int) or not 0 <= piece < 2048:
                    raise PeerProtocolError("ut_metadata message without msg_type/piece")
                if mt == 0:
                    ev.append(m.MetadataRequest(piece))
                elif mt == 1:
                    total = d.get(b"total_size")
                    data = payload[end:]
                    if not isinstance(total, int) or len(data) > m.METADATA_PIECE:
                        raise PeerProtocolError("ut_metadata data message is malformed")
                    ev.append(m.MetadataData(piece, total, data))
                elif mt == 2:
                    ev.append(m.MetadataReject(piece))
            elif ext_id == m.UT_PEX_ID:
                d = bencode.decode(payload, max_depth=4)
                if not isinstance(d, dict):
                    raise PeerProtocolError("ut_pex message is not a dictionary")
                cap = self.limits.max_pex_entries
                added: list[tuple[str, int]] = []
                dropped: list[tuple[str, int]] = []
                for key, v6, out in ((b"added", False, added), (b"added6", True, added),
                                     (b"dropped", False, dropped), (b"dropped6", True, dropped)):
                    raw = d.get(key)
                    if isinstance(raw, bytes):
                        out += m.parse_compact_peers(raw, v6)[:cap]
                ev.append(m.Pex(tuple(added[:cap]), tuple(dropped[:cap])))
            else:
                ev.append(m.UnknownExtended(ext_id, payload))
        except BencodeError as exc:
            raise PeerProtocolError(f"extended message {ext_id}: {exc}") from None

    def events(self) -> list[Any]:
        out, self._events = self._events, []
        return out

    # -- output --
    def data_to_send(self) -> list[bytes | memoryview]:
        out, self._out = self._out, []
        return out

    def choke(self) -> None:
        if not self.am_choking:
            self.am_choking = True
            self._out.append(m.simple(m.CHOKE))
            if self.fast:
                # BEP 6: every pending request is rejected explicitly on choke.
                for req in self.peer_requests:
                    self._out.append(m.request(m.REJECT, *req))
            self.peer_requests.clear()

    def unchoke(self) -> None:
        if self.am_choking:
            self.am_choking = False
            self._out.append(m.simple(m.UNCHOKE))

    def interested(self, value: bool) -> None:
        if value != self.am_interested:
            self.am_interested = value
            self._out.append(m.simple(m.INTERESTED if value else m.NOT_INTERESTED))

    def have(self, index: int) -> None:
        self._out.append(m.have(index))

    def send_bitfield(self, bf: Bitfield) -> None:
        if self.fast and bf.complete and bf.size:
            self._out.append(m.simple(m.HAVE_ALL))
        elif self.fast and bf.count == 0:
            self._out.append(m.simple(m.HAVE_NONE))
        elif bf.count:
            self._out.append(m.bitfield(bf.to_bytes()))

    def request(self, index: int, begin: int, length: int) -> None:
        self._out.append(m.request(m.REQUEST, index, begin, length))

    def cancel(self, index: int, begin: int, length: int) -> None:
        self._out.append(m.request(m.CANCEL, index, begin, length))

    def reject(self, index: int, begin: int, length: int) -> None:
        self.peer_requests.pop((index, begin, length), None)
        if self.fast:
            self._out.append(m.request(m.REJECT, index, begin, length))

    def piece(self, index: int, begin: int, block: bytes | memoryview) -> bool:
        """Queue a block for a request still outstanding; False if it was cancelled meanwhile."""
        key = (index, begin, len(block))
        if key not in self.peer_requests:
            return False
        del self.peer_requests[key]
        self._out.append(m.piece_header(index, begin, len(block)))
        self._out.append(block)
        return True

    def keep_alive(self) -> None:
        self._out.append(b"\0\0\0\0")

    def allowed_fast(self, index: int) -> None:
        if self.fast:
            self._out.append(struct.pack(">IBI", 5, m.ALLOWED_FAST, index))

    def ext_handshake(self, *, metadata_size: int | None, listen_port: int | None) -> None:
        if self.extended:
            payload = bencode.encode(m.ext_handshake_payload(
                metadata_size=metadata_size, listen_port=listen_port, reqq=self.limits.max_peer_requests))
            self._out.append(m.extended(0, payload))

    def metadata_request(self, piece: int) -> bool:
        ext = self.remote_ext.get("ut_metadata")
        if not ext:
            return False
        self._out.append(m.extended(ext, bencode.encode({"msg_type": 0, "piece": piece})))
        return True

    def metadata_data(self, piece: int, total_size: int, data: bytes) -> None:
        ext = self.remote_ext.get("ut_metadata")
        if ext:
            head = bencode.encode({"msg_type": 1, "piece": piece, "total_size": total_size})
            self._out.append(m.extended(ext, head + data))

    def metadata_reject(self, piece: int) -> None:
        ext = self.remote_ext.get("ut_metadata")
        if ext:
            self._out.append(m.extended(ext, bencode.encode({"msg_type": 2, "piece": piece})))

    def pex(self, added: list[tuple[str, int]], dropped: list[tuple[str, int]]) -> bool:
        ext = self.remote_ext.get("ut_pex")
        if not ext:
            return False
        v4a = [p for p in added if ":" not in p[0]][:50]
        v6a = [p for p in added if ":" in p[0]][:50]
        d: dict[str, Any] = {
            "added": m.compact_peers(v4a), "added.f": bytes(len(v4a)),
            "dropped": m.compact_peers([p for p in dropped if ":" not in p[0]][:50]),
        }
        if v6a:
            d["added6"] = m.compact_peers(v6a, v6=True)
            d["added6.f"] = bytes(len(v6a))
        self._out.append(m.extended(ext, bencode.encode(d)))
        return True

    def close(self) -> None:
        self.state = State.CLOSED
