"""AMF3 (Adobe's AMF3 specification), decoding with the same bounds as AMF0, and a small encoder.

Clients that negotiate objectEncoding 3 send commands as type-17 messages (a zero byte, then AMF0
values that may switch to AMF3 with the AVM+ marker) and data as type-15 messages. We decode
undefined, null, booleans, integers, doubles, strings, XML, dates, arrays (dense part as a list,
or a dict when it has associative entries), objects (sealed and dynamic members; externalizable
objects are refused) and byte arrays, with the string, object and traits reference tables.
"""

from __future__ import annotations

import struct
from typing import Any

from hivecast.rtmp.errors import AmfError

UNDEFINED, NULL, FALSE, TRUE, INTEGER, DOUBLE, STRING, XML_DOC, DATE, ARRAY, OBJECT, XML, BYTE_ARRAY = range(13)

MAX_DEPTH = 32
MAX_ITEMS = 100_000


class Amf3Decoder:
    def __init__(self, data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.max_depth = max(0, max_depth)
        self.max_items = max(0, max_items)
        self.items = 0
        self.strings: list[str] = []
        self.objects: list[Any] = []
        self.traits: list[tuple[str, bool, list[str]]] = []

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise AmfError(f"AMF3: truncated value (need {n} bytes at offset {self.pos})")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def _u29(self) -> int:
        value = 0
        for i in range(4):
            b = self._take(1)[0]
            if i == 3:
                return (value << 8) | b
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise AssertionError("unreachable")

    def _count(self, n: int) -> None:
        self.items += n
        if self.items > self.max_items:
            raise AmfError(f"AMF3: more than {self.max_items} values in one message")

    def _string(self) -> str:
        ref = self._u29()
        if not ref & 1:
            index = ref >> 1
            if index >= len(self.strings):
                raise AmfError(f"AMF3: string reference {index} out of range")
            return self.strings[index]
        n = ref >> 1
        try:
            s = bytes(self._take(n)).decode("utf-8")
        except UnicodeDecodeError:
            raise AmfError("AMF3: string is not UTF-8") from None
        if s:
            self.strings.append(s)
        return s

    def _object_ref(self, ref: int) -> Any:
        index = ref >> 1
        if index >= len(self.objects):
            raise AmfError(f"AMF3: object reference {index} out of range")
        return self.objects[index]

    def value(self, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise AmfError(f"AMF3: nesting deeper than {self.max_depth}")
        self._count(1)
        marker = self._take(1)[0]
        if marker in (UNDEFINED, NULL):
            return None
        if marker == FALSE:
            return False
        if marker == TRUE:
            return True
        if marker == INTEGER:
            n = self._u29()
            return n - (1 << 29) if n & (1 << 28) else n
        if marker == DOUBLE:
            return struct.unpack(">d", self._take(8))[0]
        if marker == STRING:
            return self._string()
        if marker in (XML_DOC, XML, BYTE_ARRAY):
            ref = self._u29()
            if not ref & 1:
                return self._object_ref(ref)
            raw = bytes(self._take(ref >> 1))
            result: Any = raw if marker == BYTE_ARRAY else raw.decode("utf-8", "replace")
            self.objects.append(result)
            return result
        if marker == DATE:
            ref = self._u29()
            if not ref & 1:
                return self._object_ref(ref)
            ms = struct.unpack(">d", self._take(8))[0]
            self.objects.append(ms)
            return ms
        if marker == ARRAY:
            return self._array(depth)
        if marker == OBJECT:
            return self._object(depth)
        raise AmfError(f"AMF3: unsupported type marker {marker}")

    def _array(self, depth: int) -> Any:
        ref = self._u29()
        if not ref & 1:
            return self._object_ref(ref)
        dense = ref >> 1
        if dense > self.remaining:
            raise AmfError(f"AMF3: array of {dense} elements in {self.remaining} bytes")
        assoc: dict[str, Any] = {}
        slot = len(self.objects)
        self.objects.append(assoc)
        while True:
            key = self._string()
            if not key:
                break
            assoc[key] = self.value(depth + 1)
        items = [self.value(depth + 1) for _ in range(dense)]
        if assoc:
            assoc.update({str(i): v for i, v in enumerate(items)})
            return assoc
        self.objects[slot] = items
        return items

    def _object(self, depth: int) -> dict[str, Any]:
        ref = self._u29()
        if not ref & 1:
            obj = self._object_ref(ref)
            if not isinstance(obj, dict):
                raise AmfError("AMF3: object reference to a non-object")
            return obj
        if not ref & 2:
            index = ref >> 2
            if index >= len(self.traits):
                raise AmfError(f"AMF3: traits reference {index} out of range")
            _name, dynamic, members = self.traits[index]
        else:
            if ref & 4:
                raise AmfError("AMF3: externalizable objects are not supported")
            dynamic = bool(ref & 8)
            count = ref >> 4
            if count > self.remaining:
                raise AmfError(f"AMF3: {count} sealed members in {self.remaining} bytes")
            name = self._string()
            members = [self._string() for _ in range(count)]
            self.traits.append((name, dynamic, members))
        obj = {}
        self.objects.append(obj)
        for member in members:
            obj[member] = self.value(depth + 1)
        if dynamic:
            while True:
                key = self._string()
                if not key:
                    break
                obj[key] = self.value(depth + 1)
        return obj


def decode_all(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> list[Any]:
    dec = Amf3Decoder(data, max_depth=max_depth, max_items=max_items)
    values: list[Any] = []
    while dec.remaining > 0:
        values.append(dec.value())
    return values


def _u29(n: int) -> bytes:
    n &= 0x1FFFFFFF
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes(((n >> 7) | 0x80, n & 0x7F))
    if n < 0x200000:
        return bytes(((n >> 14) | 0x80, ((n >> 7) & 0x7F) | 0x80, n & 0x7F))
    return bytes(((n >> 22) | 0x80, ((n >> 15) & 0x7F) | 0x80, ((n >> 8) & 0x7F) | 0x80, n & 0xFF))


def _encode_string(s: str, out: bytearray) -> None:
    raw = s.encode()
    out += _u29((len(raw) << 1) | 1)
    out += raw


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfError("AMF3: value nested too deeply to encode")
    if value is None:
        out.append(NULL)
    elif value is True:
        out.append(TRUE)
    elif value is False:
        out.append(FALSE)
    elif isinstance(value, int) and -(1 << 28) <= value < (1 << 28):
        out.append(INTEGER)
        out += _u29(value)
    elif isinstance(value, (int, float)):
        out.append(DOUBLE)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        out.append(STRING)
        _encode_string(value, out)
    elif isinstance(value, bytes):
        out.append(BYTE_ARRAY)
        out += _u29((len(value) << 1) | 1)
        out += value
    elif isinstance(value, (list, tuple)):
        out.append(ARRAY)
        out += _u29((len(value) << 1) | 1)
        out.append(0x01)  # empty associative part
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out.append(OBJECT)
        out.append(0x0B)  # inline traits, dynamic, no sealed members
        out.append(0x01)  # anonymous class name
        for key, item in value.items():
            _encode_string(str(key), out)
            _encode(item, out, depth + 1)
        out.append(0x01)
    else:
        raise AmfError(f"AMF3: cannot encode {type(value).__name__}")


def encode(*values: Any) -> bytes:
    """Values in AMF3. Strings are written inline (no reference table), which every reader accepts."""
    out = bytearray()
    for value in values:
        _encode(value, out, 0)
    return bytes(out)
