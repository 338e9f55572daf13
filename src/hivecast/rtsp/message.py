"""RTSP 1.0 messages (RFC 2326 sections 4, 6, 7, 10.12): parse and serialize. Sans I/O.

`MessageParser.feed(data)` returns complete events: `Request`, `Response`, or `InterleavedFrame`
(`$` channel length data, RFC 2326 10.12). Sizes are bounded by the limits given to the parser;
anything over them, or anything that is not RTSP, raises `ProtocolError` and the caller closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from hivecast.rtsp.errors import MessageTooLarge, ProtocolError

RTSP_VERSION = "RTSP/1.0"
METHODS = frozenset({"OPTIONS", "DESCRIBE", "ANNOUNCE", "SETUP", "PLAY", "PAUSE", "RECORD", "TEARDOWN",
                     "GET_PARAMETER", "SET_PARAMETER", "REDIRECT"})
REASONS = {
    200: "OK", 201: "Created", 301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 408: "Request Timeout", 413: "Request Entity Too Large",
    414: "Request-URI Too Large", 415: "Unsupported Media Type", 453: "Not Enough Bandwidth",
    454: "Session Not Found", 455: "Method Not Valid in This State", 457: "Invalid Range",
    459: "Aggregate Operation Not Allowed", 460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "RTSP Version Not Supported", 551: "Option Not Supported",
}


class Headers:
    """Ordered, case-insensitive header list (names keep their spelling on output)."""

    def __init__(self, items: list[tuple[str, str]] | dict[str, str] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items.items() if isinstance(items, dict) else items or [])

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, value: str) -> None:
        lname = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lname]
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(slots=True)
class Request:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    def serialize(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {RTSP_VERSION}", self.headers, self.body)


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str = ""

    def serialize(self) -> bytes:
        reason = self.reason or REASONS.get(self.status, "Unknown")
        return _serialize(f"{RTSP_VERSION} {self.status} {reason}", self.headers, self.body)


@dataclass(slots=True)
class InterleavedFrame:
    channel: int
    data: bytes

    def serialize(self) -> bytes:
        return interleaved(self.channel, self.data)


def interleaved(channel: int, data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("interleaved frame over 65535 bytes")
    return bytes((0x24, channel & 0xFF)) + len(data).to_bytes(2, "big") + data


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    has_length = False
    for k, v in headers:
        if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
            raise ValueError("header with a line break")
        if k.lower() == "content-length":
            has_length = True
            continue
        lines.append(f"{k}: {v}")
    if body or has_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


Event = Request | Response | InterleavedFrame


class MessageParser:
    """Incremental parser for one RTSP connection (both directions look the same on the wire)."""

    def __init__(self, *, max_header_bytes: int = 16 * 1024, max_headers: int = 64,
                 max_body_bytes: int = 1024 * 1024) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._pending: Request | Response | None = None
        self._body_needed = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            event = self._next()
            if event is None:
                return events
            events.append(event)

    def _next(self) -> Event | None:
        buf = self._buf
        if self._pending is not None:
            if len(buf) < self._body_needed:
                return None
            msg = self._pending
            msg.body = bytes(buf[: self._body_needed])
            del buf[: self._body_needed]
            self._pending = None
            return msg
        # Skip stray line breaks between messages (RFC 2326 allows leading CRLF tolerance).
        while buf[:2] == b"\r\n":
            del buf[:2]
        if not buf:
            return None
        if buf[0] == 0x24:
            if len(buf) < 4:
                return None
            size = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + size:
                return None
            frame = InterleavedFrame(buf[1], bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
            return frame
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            alt = buf.find(b"\n\n")
            if alt < 0:
                if len(buf) > self.max_header_bytes:
                    raise MessageTooLarge("message header over the limit")
                if len(buf) >= 8 and not _looks_like_start(bytes(buf[:8])):
                    raise ProtocolError("not an RTSP message")
                return None
            end, sep = alt, 2
        else:
            sep = 4
        if end > self.max_header_bytes:
            raise MessageTooLarge("message header over the limit")
        head = bytes(buf[:end])
        del buf[: end + sep]
        msg = self._parse_head(head)
        length_text = msg.headers.get("Content-Length")
        length = 0
        if length_text is not None:
            if not length_text.strip().isdigit() or len(length_text.strip()) > 10:
                raise ProtocolError("bad Content-Length")
            length = int(length_text)
            if length > self.max_body_bytes:
                raise MessageTooLarge("message body over the limit")
        if length:
            self._pending = msg
            self._body_needed = length
            return self._next()
        return msg

    def _parse_head(self, head: bytes) -> Request | Response:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message header is not UTF-8") from None
        lines = text.replace("\r\n", "\n").split("\n")
        if len(lines) - 1 > self.max_headers:
            raise MessageTooLarge("too many header lines")
        start = lines[0]
        headers = Headers()
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in " \t" and len(headers):
                # Obsolete line folding: continue the previous header's value.
                items = list(headers)
                k, v = items[-1]
                headers = Headers([*items[:-1], (k, v + " " + line.strip())])
                continue
            name, colon, value = line.partition(":")
            name = name.strip()
            if not colon or not name or any(c in name for c in " \t"):
                raise ProtocolError(f"bad header line {line[:40]!r}")
            headers.add(name, value.strip())
        if start.startswith("RTSP/"):
            parts = start.split(" ", 2)
            if len(parts) < 2 or parts[0] != RTSP_VERSION or not parts[1].isdigit() or len(parts[1]) != 3:
                raise ProtocolError(f"bad status line {start[:60]!r}")
            return Response(int(parts[1]), headers, b"", parts[2] if len(parts) > 2 else "")
        parts = start.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ProtocolError(f"bad request line {start[:60]!r}")
        method, uri, version = parts
        if not version.startswith("RTSP/"):
            raise ProtocolError(f"not RTSP: {version[:20]!r}")
        if not all(c.isalnum() or c in "_-" for c in method):
            raise ProtocolError("bad method token")
        return Request(method, uri, headers)


def _looks_like_start(prefix: bytes) -> bool:
    """Cheap early rejection of garbage before a whole header block has arrived."""
    return prefix.startswith(b"RTSP/") or all(65 <= c <= 90 or c == 95 or c == 32 for c in prefix[:4])


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """`a;b=c;d` -> ("a", {"b": "c", "d": ""}) for Transport, Session and similar headers."""
    parts = [p.strip() for p in value.split(";")]
    params: dict[str, str] = {}
    for p in parts[1:]:
        if not p:
            continue
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return parts[0], params
