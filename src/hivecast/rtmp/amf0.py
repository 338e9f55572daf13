"""AMF0 (Action Message Format, Adobe's AMF0 specification), strictly bounded.

Decoded values: number -> float, boolean -> bool, string/long string/XML -> str, object/ECMA array
-> dict, strict array -> list, null/undefined -> None, date -> float (ms since the epoch),
typed object -> dict (class name dropped), AVM+ switch -> the AMF3 value. Encoding takes the same
Python types (int/float -> number, dict -> object, `EcmaArray` -> ECMA array, list -> strict array).

Bounds: a decoder refuses nesting deeper than `max_depth` and more than `max_items` values in
one message, so an "AMF bomb" (deep nesting, huge declared counts) costs no more than its bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from hivecast.rtmp.errors import AmfError

NUMBER, BOOLEAN, STRING, OBJECT, MOVIECLIP, NULL, UNDEFINED, REFERENCE = 0, 1, 2, 3, 4, 5, 6, 7
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING, UNSUPPORTED = 8, 9, 10, 11, 12, 13
XML_DOCUMENT, TYPED_OBJECT, AVMPLUS = 15, 16, 17

MAX_DEPTH = 32
MAX_ITEMS = 100_000

_DOUBLE = struct.Struct(">d")


class EcmaArray(dict[str, Any]):
    """A dict that encodes as an AMF0 ECMA array (what onMetaData usually is)."""


class Undefined:
    """The AMF0 undefined marker, for encoding where a peer expects it rather than null."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED_VALUE = Undefined()


class Decoder:
    def __init__(self, data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.max_depth = max_depth
        self.max_items = max_items
        self.items = 0
        # Objects decoded so far, for AMF0 references (index into this list).
        self.refs: list[Any] = []

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise AmfError(f"AMF0: truncated value (need {n} bytes at offset {self.pos})")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def _u8(self) -> int:
        return self._take(1)[0]

    def _u16(self) -> int:
        b = self._take(2)
        return (b[0] << 8) | b[1]

    def _u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def _utf8(self, n: int) -> str:
        try:
            return bytes(self._take(n)).decode("utf-8")
        except UnicodeDecodeError:
            raise AmfError("AMF0: string is not UTF-8") from None

    def _short_string(self) -> str:
        return self._utf8(self._u16())

    def _count(self, n: int) -> None:
        self.items += n
        if self.items > self.max_items:
            raise AmfError(f"AMF0: more than {self.max_items} values in one message")

    def _properties(self, out: dict[str, Any], depth: int) -> None:
        while True:
            key = self._short_string()
            if self.remaining >= 1 and self.data[self.pos] == OBJECT_END:
                if key:
                    raise AmfError("AMF0: object end marker after a non-empty key")
                self.pos += 1
                return
            self._count(1)
            out[key] = self.value(depth + 1)

    def value(self, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise AmfError(f"AMF0: nesting deeper than {self.max_depth}")
        self._count(1)
        marker = self._u8()
        if marker == NUMBER:
            return _DOUBLE.unpack(self._take(8))[0]
        if marker == BOOLEAN:
            return self._u8() != 0
        if marker == STRING:
            return self._short_string()
        if marker in (OBJECT, TYPED_OBJECT):
            if marker == TYPED_OBJECT:
                self._short_string()
            obj: dict[str, Any] = {}
            self.refs.append(obj)
            self._properties(obj, depth)
            return obj
        if marker in (NULL, UNDEFINED, UNSUPPORTED):
            return None
        if marker == REFERENCE:
            index = self._u16()
            if index >= len(self.refs):
                raise AmfError(f"AMF0: reference {index} to an object not yet seen")
            return self.refs[index]
        if marker == ECMA_ARRAY:
            self._u32()  # the count is only a hint; the end marker ends the array
            arr: dict[str, Any] = EcmaArray()
            self.refs.append(arr)
            self._properties(arr, depth)
            return arr
        if marker == STRICT_ARRAY:
            n = self._u32()
            # Every element is at least one byte: a count beyond the bytes left is a lie.
            if n > self.remaining:
                raise AmfError(f"AMF0: strict array of {n} elements in {self.remaining} bytes")
            lst: list[Any] = []
            self.refs.append(lst)
            for _ in range(n):
                lst.append(self.value(depth + 1))
            return lst
        if marker == DATE:
            ms = _DOUBLE.unpack(self._take(8))[0]
            self._take(2)  # time zone, reserved
            return ms
        if marker in (LONG_STRING, XML_DOCUMENT):
            return self._utf8(self._u32())
        if marker == AVMPLUS:
            from hivecast.rtmp.amf3 import Amf3Decoder

            sub = Amf3Decoder(bytes(self.data[self.pos :]), max_depth=self.max_depth - depth,
                              max_items=self.max_items - self.items)
            result = sub.value()
            self.pos += sub.pos
            self.items += sub.items
            return result
        raise AmfError(f"AMF0: unknown type marker {marker}")


def decode_all(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> list[Any]:
    """Every value in `data` (a command or data message body)."""
    dec = Decoder(data, max_depth=max_depth, max_items=max_items)
    values: list[Any] = []
    while dec.remaining > 0:
        values.append(dec.value())
    return values


def _encode_key(key: str, out: bytearray) -> None:
    raw = key.encode()
    if len(raw) > 0xFFFF:
        raise AmfError("AMF0: property name longer than 65535 bytes")
    out += struct.pack(">H", len(raw))
    out += raw


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfError("AMF0: value nested too deeply to encode")
    if value is None:
        out.append(NULL)
    elif isinstance(value, Undefined):
        out.append(UNDEFINED)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, (int, float)):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += struct.pack(">H", len(raw))
        else:
            out.append(LONG_STRING)
            out += struct.pack(">I", len(raw))
        out += raw
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(ECMA_ARRAY)
            out += struct.pack(">I", len(value))
        else:
            out.append(OBJECT)
        for key, item in value.items():
            _encode_key(str(key), out)
            _encode(item, out, depth + 1)
        out += b"\x00\x00\x09"
    elif isinstance(value, (list, tuple)):
        out.append(STRICT_ARRAY)
        out += struct.pack(">I", len(value))
        for item in value:
            _encode(item, out, depth + 1)
    else:
        raise AmfError(f"AMF0: cannot encode {type(value).__name__}")


def encode(*values: Any) -> bytes:
    out = bytearray()
    for value in values:
        _encode(value, out, 0)
    return bytes(out)
