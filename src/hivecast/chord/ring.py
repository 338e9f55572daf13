"""The identifier circle: ids are integers mod 2**bits; keys and nodes hash onto it with SHA-1."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_BITS = 64
# The id of a member known only by its address (a seed): its first answer tells the real one.
UNKNOWN_ID = 0


def key_id(key: str | bytes, bits: int = DEFAULT_BITS) -> int:
    raw = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.sha1(raw).digest(), "big") >> (160 - bits)


def in_open(x: int, a: int, b: int) -> bool:
    """x in the open arc (a, b) going clockwise; (a, a) is the whole ring except a."""
    if a < b:
        return a < x < b
    return x > a or x < b if a != b else x != a


def in_half_open(x: int, a: int, b: int) -> bool:
    """x in (a, b] clockwise; (a, a] is the whole ring."""
    return x == b or in_open(x, a, b) or a == b


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A ring member: its id, its UDP address and what it serves (the edge's base URL)."""

    id: int
    addr: tuple[str, int]
    url: str = ""
