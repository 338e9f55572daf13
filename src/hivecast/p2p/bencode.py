"""Strict bencode (BEP 3): canonical integers, sorted unique byte-string keys, bounded depth and size.

Strictness matters because a v1 info-hash is the SHA-1 of the info dictionary's bytes: a decoder
that accepted non-canonical input could re-encode to different bytes and a different hash. Here
decode(encode(x)) == x and encode(decode(b)) == b for every b that decodes.
"""

from __future__ import annotations

from typing import Any

from hivecast.p2p.errors import BencodeError

Bencodable = int | bytes | str | list[Any] | tuple[Any, ...] | dict[Any, Any]

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
_DIGITS = b"0123456789"


def encode(value: Any) -> bytes:
    """Bencode ints, bytes, str (UTF-8), lists/tuples and dicts with bytes or str keys."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > DEFAULT_MAX_DEPTH:
        raise BencodeError("value nested too deeply to encode")
    if isinstance(value, bool):
        raise BencodeError("booleans have no bencode form")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        raw = value.encode()
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        items: dict[bytes, Any] = {}
        for key, item in value.items():
            raw_key = key.encode() if isinstance(key, str) else key
            if not isinstance(raw_key, bytes):
                raise BencodeError(f"dictionary key {key!r} is not a string")
            if raw_key in items:
                raise BencodeError(f"duplicate dictionary key {raw_key!r}")
            items[raw_key] = item
        out.append(b"d")
        for raw_key in sorted(items):
            out.append(b"%d:" % len(raw_key))
            out.append(raw_key)
            _encode(items[raw_key], out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


class _Decoder:
    __slots__ = ("data", "max_depth", "pos")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, what: str) -> BencodeError:
        return BencodeError(f"{what} at offset {self.pos}")

    def value(self, depth: int) -> Any:
        data = self.data
        if self.pos >= len(data):
            raise self.fail("unexpected end of data")
        c = data[self.pos]
        if c == 0x69:  # 'i'
            return self.integer()
        if c in _DIGITS:
            return self.string()
        if depth >= self.max_depth:
            raise self.fail(f"nesting deeper than {self.max_depth}")
        if c == 0x6C:  # 'l'
            self.pos += 1
            items: list[Any] = []
            while True:
                if self.pos >= len(data):
                    raise self.fail("unterminated list")
                if data[self.pos] == 0x65:
                    self.pos += 1
                    return items
                items.append(self.value(depth + 1))
        if c == 0x64:  # 'd'
            self.pos += 1
            result: dict[bytes, Any] = {}
            last: bytes | None = None
            while True:
                if self.pos >= len(data):
                    raise self.fail("unterminated dictionary")
                if data[self.pos] == 0x65:
                    self.pos += 1
                    return result
                if data[self.pos] not in _DIGITS:
                    raise self.fail("dictionary key is not a string")
                key_pos = self.pos
                key = self.string()
                if last is not None and key <= last:
                    self.pos = key_pos
                    raise self.fail("dictionary keys not sorted or not unique")
                last = key
                result[key] = self.value(depth + 1)
        raise self.fail(f"unexpected byte {c:#04x}")

    def integer(self) -> int:
        data = self.data
        end = data.find(b"e", self.pos + 1, self.pos + 1 + 24)
        if end < 0:
            raise self.fail("unterminated or overlong integer")
        digits = data[self.pos + 1 : end]
        body = digits[1:] if digits.startswith(b"-") else digits
        if not body or any(ch not in _DIGITS for ch in body):
            raise self.fail("malformed integer")
        if body[0] == 0x30 and (len(body) > 1 or digits.startswith(b"-")):
            raise self.fail("non-canonical integer (leading zero or -0)")
        self.pos = end + 1
        return int(digits)

    def string(self) -> bytes:
        data = self.data
        colon = data.find(b":", self.pos, self.pos + 12)
        if colon < 0:
            raise self.fail("malformed string length")
        digits = data[self.pos : colon]
        if not digits or any(ch not in _DIGITS for ch in digits):
            raise self.fail("malformed string length")
        if digits[0] == 0x30 and len(digits) > 1:
            raise self.fail("non-canonical string length (leading zero)")
        length = int(digits)
        start = colon + 1
        if start + length > len(data):
            raise self.fail(f"string of {length} bytes runs past the end")
        self.pos = start + length
        return data[start : self.pos]


def decode(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Decode exactly one value that fills all of `data`; anything lax raises BencodeError."""
    value, end = decode_prefix(data, max_depth=max_depth, max_size=max_size)
    if end != len(data):
        raise BencodeError(f"trailing data after the value at offset {end}")
    return value


def decode_prefix(
    data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[Any, int]:
    """Decode one value at the start of `data`; returns it and where it ended (ut_metadata appends raw bytes)."""
    if len(data) > max_size:
        raise BencodeError(f"input of {len(data)} bytes is over the {max_size}-byte limit")
    decoder = _Decoder(bytes(data), max_depth)
    value = decoder.value(0)
    return value, decoder.pos


__all__ = ["Bencodable", "BencodeError", "decode", "decode_prefix", "encode"]
