"""A fixed-size set of piece indices, with the BEP 3 wire form (high bit first, spare bits zero)."""

from __future__ import annotations

from collections.abc import Iterator


class Bitfield:
    __slots__ = ("_bits", "count", "size")

    def __init__(self, size: int, *, full: bool = False) -> None:
        self.size = size
        self._bits = bytearray([1 if full else 0]) * size
        self.count = size if full else 0

    @classmethod
    def from_bytes(cls, data: bytes, size: int) -> Bitfield:
        """Decode the wire form; raises ValueError if the length is wrong or spare bits are set."""
        if len(data) != (size + 7) // 8:
            raise ValueError(f"bitfield of {len(data)} bytes for {size} pieces")
        bf = cls(size)
        for i in range(size):
            if data[i >> 3] & (0x80 >> (i & 7)):
                bf._bits[i] = 1
        bf.count = sum(bf._bits)
        spare = size & 7
        if spare and data[-1] & (0xFF >> spare):
            raise ValueError("bitfield has spare bits set")
        return bf

    def to_bytes(self) -> bytes:
        out = bytearray((self.size + 7) // 8)
        for i, b in enumerate(self._bits):
            if b:
                out[i >> 3] |= 0x80 >> (i & 7)
        return bytes(out)

    def __contains__(self, index: int) -> bool:
        return 0 <= index < self.size and self._bits[index] == 1

    def __getitem__(self, index: int) -> bool:
        return self._bits[index] == 1

    def add(self, index: int) -> bool:
        """Set a bit; True if it was not set before."""
        if self._bits[index]:
            return False
        self._bits[index] = 1
        self.count += 1
        return True

    def discard(self, index: int) -> None:
        if self._bits[index]:
            self._bits[index] = 0
            self.count -= 1

    @property
    def complete(self) -> bool:
        return self.count == self.size

    def __iter__(self) -> Iterator[int]:
        return (i for i, b in enumerate(self._bits) if b)

    def missing(self) -> Iterator[int]:
        return (i for i, b in enumerate(self._bits) if not b)

    def __len__(self) -> int:
        return self.count
