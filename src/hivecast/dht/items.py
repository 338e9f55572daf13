"""BEP 44 items (sans-I/O): immutable items named by their SHA-1, and mutable items named by an
ed25519 public key (plus an optional salt), signed over their sequence number and value.

The store keeps what a DHT node holds for others: bounded in count, each item for ITEM_TTL after
its last put. A mutable item replaces the stored one only with a valid signature and a higher
sequence number (and, if the writer asked for it, only if the stored one is the version it read:
compare-and-swap), so nobody without the key can change it and nobody can roll it back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hivecast.p2p.bencode import encode

ITEM_TTL = 2 * 3600.0  # BEP 44: items live about two hours unless put again
MAX_ITEMS = 1000
MAX_VALUE = 1000  # bencoded bytes of `v`
MAX_SALT = 64
MAX_SEQ = (1 << 63) - 1
KEY_BYTES = 32
SIG_BYTES = 64

# BEP 44 error codes
MESSAGE_TOO_BIG = 205
INVALID_SIGNATURE = 206
SALT_TOO_BIG = 207
CAS_MISMATCH = 301
SEQ_TOO_LOW = 302


class ItemError(ValueError):
    """A put the store refuses; `code` and `message` are what the KRPC error carries."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def immutable_target(value: Any) -> bytes:
    return hashlib.sha1(encode(value)).digest()


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    return hashlib.sha1(public_key + salt).digest()


def signed_bytes(seq: int, value: Any, salt: bytes = b"") -> bytes:
    """What the signature covers: the bencoded dict {salt, seq, v} without its d...e."""
    head = b"4:salt" + encode(salt) if salt else b""
    return head + b"3:seqi%de1:v" % seq + encode(value)


@dataclass(frozen=True, slots=True)
class MutableItem:
    k: bytes  # ed25519 public key
    seq: int
    v: Any
    sig: bytes
    salt: bytes = b""

    @property
    def target(self) -> bytes:
        return mutable_target(self.k, self.salt)

    def valid(self) -> bool:
        """The signature checks out, and every field is within BEP 44's bounds."""
        if len(self.k) != KEY_BYTES or len(self.sig) != SIG_BYTES or not 0 <= self.seq <= MAX_SEQ:
            return False
        if len(self.salt) > MAX_SALT or len(encode(self.v)) > MAX_VALUE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.k).verify(self.sig, signed_bytes(self.seq, self.v, self.salt))
        except (InvalidSignature, ValueError):
            return False
        return True


def sign(seed: bytes, value: Any, seq: int, salt: bytes = b"") -> MutableItem:
    """A mutable item signed with the ed25519 key whose 32-byte seed is `seed`."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    return MutableItem(public, seq, value, key.sign(signed_bytes(seq, value, salt)), salt)


def public_key_of(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def check_put(item: MutableItem, stored: MutableItem | None, cas: int | None) -> None:
    """Raise ItemError unless `item` may replace `stored` (BEP 44's order of checks)."""
    if len(encode(item.v)) > MAX_VALUE:
        raise ItemError(MESSAGE_TOO_BIG, "message (v field) too big")
    if len(item.salt) > MAX_SALT:
        raise ItemError(SALT_TOO_BIG, "salt (salt field) too big")
    if not item.valid():
        raise ItemError(INVALID_SIGNATURE, "invalid signature")
    if stored is None:
        return
    if cas is not None and cas != stored.seq:
        raise ItemError(CAS_MISMATCH, "the CAS hash mismatched, re-read value and try again")
    if item.seq < stored.seq or (item.seq == stored.seq and encode(item.v) != encode(stored.v)):
        raise ItemError(SEQ_TOO_LOW, "sequence number less than current")


class ItemStore:
    """Items held for other nodes, by target: immutable values and mutable items."""

    def __init__(self, *, max_items: int = MAX_ITEMS, ttl: float = ITEM_TTL) -> None:
        self.max_items = max_items
        self.ttl = ttl
        self._items: dict[bytes, tuple[Any, float]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _keep(self, target: bytes, item: Any, now: float) -> None:
        self._items.pop(target, None)  # re-inserted last: the oldest put is dropped first
        self._items[target] = (item, now + self.ttl)
        while len(self._items) > self.max_items:
            self._items.pop(next(iter(self._items)))

    def get(self, target: bytes, now: float) -> Any:
        """The immutable value or the MutableItem stored under `target`, or None."""
        found = self._items.get(target)
        if found is None:
            return None
        if found[1] <= now:
            del self._items[target]
            return None
        return found[0]

    def put_immutable(self, value: Any, now: float) -> bytes:
        if len(encode(value)) > MAX_VALUE:
            raise ItemError(MESSAGE_TOO_BIG, "message (v field) too big")
        target = immutable_target(value)
        self._keep(target, value, now)
        return target

    def put_mutable(self, item: MutableItem, now: float, *, cas: int | None = None) -> None:
        stored = self.get(item.target, now)
        check_put(item, stored if isinstance(stored, MutableItem) else None, cas)
        self._keep(item.target, item, now)


__all__ = [
    "CAS_MISMATCH",
    "INVALID_SIGNATURE",
    "ITEM_TTL",
    "MESSAGE_TOO_BIG",
    "SALT_TOO_BIG",
    "SEQ_TOO_LOW",
    "ItemError",
    "ItemStore",
    "MutableItem",
    "check_put",
    "immutable_target",
    "mutable_target",
    "public_key_of",
    "sign",
    "signed_bytes",
]
