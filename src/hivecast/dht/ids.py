"""Node ids, the XOR metric, compact node/peer encodings (BEP 5) and BEP 42 node-id checks."""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, field

ID_BYTES = 20
ID_BITS = 160
Address = tuple[str, int]


def id_int(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big")


def distance(a: bytes, b: bytes) -> int:
    return id_int(a) ^ id_int(b)


def random_id(rng: random.Random) -> bytes:
    return rng.getrandbits(ID_BITS).to_bytes(ID_BYTES, "big")


def random_id_in_bucket(own: bytes, prefix_len: int, rng: random.Random) -> bytes:
    """A random id that shares exactly `prefix_len` leading bits with `own` (for bucket refresh)."""
    own_i = id_int(own)
    if prefix_len >= ID_BITS:
        return own
    flip = 1 << (ID_BITS - 1 - prefix_len)
    low_mask = flip - 1
    value = ((own_i ^ flip) & ~low_mask) | (rng.getrandbits(ID_BITS) & low_mask)
    return value.to_bytes(ID_BYTES, "big")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A contact: 20-byte id plus IPv4 address. Hash and equality include both."""

    id: bytes
    addr: Address
    int_id: int = field(default=0, compare=False, repr=False)

    @classmethod
    def make(cls, node_id: bytes, addr: Address) -> NodeInfo:
        return cls(node_id, addr, id_int(node_id))


def encode_peer(addr: Address) -> bytes:
    return ipaddress.IPv4Address(addr[0]).packed + struct.pack("!H", addr[1])


def decode_peer(data: bytes) -> Address:
    if len(data) != 6:
        raise ValueError("compact peer must be 6 bytes")
    port = struct.unpack("!H", data[4:])[0]
    return (str(ipaddress.IPv4Address(data[:4])), port)


def encode_nodes(nodes: list[NodeInfo]) -> bytes:
    return b"".join(n.id + encode_peer(n.addr) for n in nodes)


def decode_nodes(data: bytes) -> list[NodeInfo]:
    if len(data) % 26:
        raise ValueError("compact node info must be a multiple of 26 bytes")
    out = []
    for i in range(0, len(data), 26):
        addr = decode_peer(data[i + 20 : i + 26])
        if addr[1] == 0:
            continue  # port 0 cannot be contacted: skip, but do not reject the whole reply
        out.append(NodeInfo.make(data[i : i + 20], addr))
    return out


# --- BEP 42: node ids derived from the external IP ------------------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_V4_MASK = bytes([0x03, 0x0F, 0x3F, 0xFF])
_EXEMPT = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                             "169.254.0.0/16", "127.0.0.0/8")]


def bep42_exempt(ip: str) -> bool:
    """Local-network addresses are exempt from the id restriction (BEP 42)."""
    address = ipaddress.ip_address(ip)
    return any(address in net for net in _EXEMPT)


def _bep42_prefix(ip: str, r: int) -> int:
    packed = ipaddress.IPv4Address(ip).packed
    masked = bytearray(b & m for b, m in zip(packed, _V4_MASK, strict=True))
    masked[0] |= (r & 0x7) << 5
    return crc32c(bytes(masked))


def bep42_node_id(ip: str, rng: random.Random, r: int | None = None) -> bytes:
    """A node id valid for `ip` under BEP 42 (first 21 bits from crc32c of the masked IP)."""
    r = rng.randrange(8) if r is None else r
    crc = _bep42_prefix(ip, r)
    middle = rng.getrandbits(136).to_bytes(17, "big")
    first = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | (middle[0] & 0x7)])
    return first + middle[1:17] + bytes([r])


def bep42_valid(node_id: bytes, ip: str) -> bool:
    if bep42_exempt(ip):
        return True
    crc = _bep42_prefix(ip, node_id[19])
    return (node_id[0] == (crc >> 24) & 0xFF and node_id[1] == (crc >> 16) & 0xFF
            and node_id[2] & 0xF8 == (crc >> 8) & 0xF8)
