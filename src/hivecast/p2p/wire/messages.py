"""Peer wire messages: one small class per message, serializers, and the handshake."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

PROTOCOL = b"BitTorrent protocol"
HANDSHAKE_LENGTH = 68

# Message ids (BEP 3, BEP 5 port, BEP 6 fast, BEP 10 extended).
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL, PORT = range(10)
SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST = 13, 14, 15, 16, 17
EXTENDED = 20

# Reserved bits: byte 5 bit 0x10 is BEP 10, byte 7 bit 0x04 is BEP 6.
EXT_BYTE, EXT_BIT = 5, 0x10
FAST_BYTE, FAST_BIT = 7, 0x04

# Our local extended message ids (advertised in our extension handshake).
UT_PEX_ID = 1
UT_METADATA_ID = 2
METADATA_PIECE = 16 * 1024

_HDR = struct.Struct(">IB")
_HAVE = struct.Struct(">IBI")
_REQ = struct.Struct(">IBIII")
_PIECE_HDR = struct.Struct(">IBII")


def reserved_bytes(*, fast: bool = True, extended: bool = True) -> bytes:
    r = bytearray(8)
    if extended:
        r[EXT_BYTE] |= EXT_BIT
    if fast:
        r[FAST_BYTE] |= FAST_BIT
    return bytes(r)


def handshake(info_hash: bytes, peer_id: bytes, reserved: bytes) -> bytes:
    return bytes([len(PROTOCOL)]) + PROTOCOL + reserved + info_hash + peer_id


@dataclass(frozen=True, slots=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    @property
    def fast(self) -> bool:
        return bool(self.reserved[FAST_BYTE] & FAST_BIT)

    @property
    def extended(self) -> bool:
        return bool(self.reserved[EXT_BYTE] & EXT_BIT)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class BitfieldMsg:
    data: bytes


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    begin: int
    block: bytes


@dataclass(frozen=True, slots=True)
class Port:
    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class ExtHandshake:
    """BEP 10 handshake: the peer's extension ids and what it told us about itself."""

    ids: dict[str, int] = field(default_factory=dict)
    metadata_size: int | None = None
    client: str | None = None
    listen_port: int | None = None
    reqq: int | None = None


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MetadataReject:
    piece: int


@dataclass(frozen=True, slots=True)
class Pex:
    added: tuple[tuple[str, int], ...] = ()
    dropped: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownExtended:
    ext_id: int
    payload: bytes


Message = (
    KeepAlive | Choke | Unchoke | Interested | NotInterested | Have | BitfieldMsg | HaveAll | HaveNone
    | Request | Cancel | Reject | Piece | Port | Suggest | AllowedFast | ExtHandshake | MetadataRequest
    | MetadataData | MetadataReject | Pex | UnknownExtended
)


# -- serializers (the hot ones avoid dataclass allocation) --

def simple(msg_id: int) -> bytes:
    return _HDR.pack(1, msg_id)


def have(index: int) -> bytes:
    return _HAVE.pack(5, HAVE, index)


def bitfield(data: bytes) -> bytes:
    return _HDR.pack(1 + len(data), BITFIELD) + data


def request(msg_id: int, index: int, begin: int, length: int) -> bytes:
    return _REQ.pack(13, msg_id, index, begin, length)


def piece_header(index: int, begin: int, length: int) -> bytes:
    return _PIECE_HDR.pack(9 + length, PIECE, index, begin)


def extended(ext_id: int, payload: bytes) -> bytes:
    return _HDR.pack(2 + len(payload), EXTENDED) + bytes([ext_id]) + payload


def port(p: int) -> bytes:
    return struct.pack(">IBH", 3, PORT, p)


def compact_peers(peers: list[tuple[str, int]], v6: bool = False) -> bytes:
    import socket

    out = bytearray()
    for host, p in peers:
        try:
            out += socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host) + struct.pack(">H", p)
        except OSError:
            continue
    return bytes(out)


def parse_compact_peers(data: bytes, v6: bool = False) -> list[tuple[str, int]]:
    import socket

    size = 18 if v6 else 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    out = []
    for i in range(0, len(data) - len(data) % size, size):
        host = socket.inet_ntop(family, data[i : i + size - 2])
        (p,) = struct.unpack_from(">H", data, i + size - 2)
        if p:
            out.append((host, p))
    return out


def ext_handshake_payload(
    *, metadata_size: int | None, listen_port: int | None, client: str = "hivecast", reqq: int = 500,
) -> dict[str, Any]:
    d: dict[str, Any] = {"m": {"ut_metadata": UT_METADATA_ID, "ut_pex": UT_PEX_ID}, "v": client, "reqq": reqq}
    if metadata_size is not None:
        d["metadata_size"] = metadata_size
    if listen_port:
        d["p"] = listen_port
    return d
