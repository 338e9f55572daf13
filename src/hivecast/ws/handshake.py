"""RFC 6455 section 4: the opening handshake, server and client side, without sockets.

Server: `accept(method, http_version, headers, ...)` validates an upgrade request and returns the
101 response headers and what was negotiated, or raises `HandshakeError` with the HTTP status.
Client: `ClientHandshake` builds the request bytes and checks the server's response head, which
`parse_response_head` reads from raw bytes with bounds on its size and header count.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hivecast.ws.deflate import (
    EXTENSION_NAME,
    DeflateParams,
    client_accept_response,
    client_offer,
    parse_extension_header,
    server_accept_offer,
)
from hivecast.ws.errors import HandshakeError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


class _HeaderLookup:
    """Anything with `get_all(name)`; hivecast.http.Headers fits, and so does a plain list."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = [(k.lower(), v) for k, v in items]

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k == name]


def _tokens(values: list[str]) -> list[str]:
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


@dataclass(frozen=True, slots=True)
class Accepted:
    """What a server agreed to: response headers to send with 101, the deflate params, the subprotocol."""

    headers: list[tuple[str, str]]
    deflate: DeflateParams | None
    subprotocol: str | None


OriginCheck = Callable[[str | None], bool]


def accept(method: str, http_version: str, headers: object, *, subprotocols: Sequence[str] = (),
           enable_deflate: bool = True, force_server_no_context_takeover: bool = True,
           origin_allowed: OriginCheck | None = None) -> Accepted:
    """Server side of section 4.2: validate the client's request and build the 101 answer."""
    get_all: Callable[[str], list[str]] = getattr(headers, "get_all", None) or _HeaderLookup(
        headers  # type: ignore[arg-type]
    ).get_all
    if method != "GET":
        raise HandshakeError("WebSocket upgrade needs GET", 405, [("allow", "GET")])
    if http_version not in ("1.1", "2", "2.0"):
        raise HandshakeError("WebSocket upgrade needs HTTP/1.1", 400)
    if "websocket" not in _tokens(get_all("upgrade")):
        raise HandshakeError("missing 'Upgrade: websocket'", 426, [("upgrade", "websocket")])
    if "upgrade" not in _tokens(get_all("connection")):
        raise HandshakeError("missing 'Connection: Upgrade'", 400)
    versions = get_all("sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != "13":
        raise HandshakeError("unsupported WebSocket version", 426, [("sec-websocket-version", "13")])
    keys = get_all("sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError("missing or repeated Sec-WebSocket-Key", 400)
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise HandshakeError("Sec-WebSocket-Key is not base64", 400) from None
    if len(raw) != 16:
        raise HandshakeError("Sec-WebSocket-Key is not 16 bytes", 400)
    origins = get_all("origin")
    if len(origins) > 1:
        raise HandshakeError("repeated Origin header", 400)
    if origin_allowed is not None and not origin_allowed(origins[0] if origins else None):
        raise HandshakeError("origin not allowed", 403)
    out: list[tuple[str, str]] = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-accept", accept_key(key)),
    ]
    deflate: DeflateParams | None = None
    if enable_deflate:
        for name, params in parse_extension_header(get_all("sec-websocket-extensions")):
            if name != EXTENSION_NAME:
                continue
            deflate = server_accept_offer(params, force_server_no_context_takeover=force_server_no_context_takeover)
            if deflate is not None:
                out.append(("sec-websocket-extensions", deflate.header_value()))
                break
    chosen: str | None = None
    if subprotocols:
        offered = [t.strip() for v in get_all("sec-websocket-protocol") for t in v.split(",") if t.strip()]
        for p in offered:
            if p in subprotocols:
                chosen = p
                break
        if chosen is not None:
            out.append(("sec-websocket-protocol", chosen))
    return Accepted(out, deflate, chosen)


# ---- client side ----

MAX_RESPONSE_HEAD = 16 * 1024
MAX_RESPONSE_HEADERS = 100


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


def parse_response_head(buf: bytes, *, max_size: int = MAX_RESPONSE_HEAD,
                        max_headers: int = MAX_RESPONSE_HEADERS) -> tuple[ResponseHead, int] | None:
    """Parse `HTTP/1.1 101 ...` + headers from the start of `buf`: (head, bytes used) or None if incomplete."""
    end = buf.find(b"\r\n\r\n", 0, max_size + 4)
    if end < 0:
        if len(buf) > max_size:
            raise HandshakeError("response head too large", 502)
        return None
    lines = buf[:end].split(b"\r\n")
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise HandshakeError(f"malformed status line {status_line[:80]!r}", 502)
    if len(lines) - 1 > max_headers:
        raise HandshakeError("too many response headers", 502)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise HandshakeError(f"malformed header line {line[:80]!r}", 502)
        headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return ResponseHead(int(parts[1]), reason, headers), end + 4


class ClientHandshake:
    """Section 4.1: one client handshake attempt (its random key, its offer, and the check of the answer)."""

    def __init__(self, host: str, resource: str, *, origin: str | None = None, subprotocols: Sequence[str] = (),
                 enable_deflate: bool = True, client_no_context_takeover: bool = False,
                 extra_headers: Sequence[tuple[str, str]] = (), key: bytes | None = None) -> None:
        self.key = base64.b64encode(key if key is not None else os.urandom(16)).decode("ascii")
        self.host = host
        self.resource = resource or "/"
        self.origin = origin
        self.subprotocols = list(subprotocols)
        self.enable_deflate = enable_deflate
        self.client_no_context_takeover = client_no_context_takeover
        self.extra_headers = list(extra_headers)

    def request_bytes(self) -> bytes:
        lines = [f"GET {self.resource} HTTP/1.1", f"Host: {self.host}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key}", "Sec-WebSocket-Version: 13"]
        if self.origin is not None:
            lines.append(f"Origin: {self.origin}")
        if self.subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(self.subprotocols))
        if self.enable_deflate:
            lines.append("Sec-WebSocket-Extensions: "
                         + client_offer(client_no_context_takeover=self.client_no_context_takeover))
        lines.extend(f"{k}: {v}" for k, v in self.extra_headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def check(self, head: ResponseHead) -> tuple[DeflateParams | None, str | None]:
        """Validate the response (section 4.1, the client's checks): (deflate params, subprotocol)."""
        if head.status != 101:
            raise HandshakeError(f"server answered {head.status} {head.reason}", head.status)
        if "websocket" not in _tokens(head.get_all("upgrade")):
            raise HandshakeError("response lacks 'Upgrade: websocket'", 502)
        if "upgrade" not in _tokens(head.get_all("connection")):
            raise HandshakeError("response lacks 'Connection: Upgrade'", 502)
        accepts = head.get_all("sec-websocket-accept")
        if len(accepts) != 1 or accepts[0].strip() != accept_key(self.key):
            raise HandshakeError("wrong Sec-WebSocket-Accept", 502)
        deflate: DeflateParams | None = None
        exts = parse_extension_header(head.get_all("sec-websocket-extensions"))
        for name, params in exts:
            if name != EXTENSION_NAME or not self.enable_deflate or deflate is not None:
                raise HandshakeError(f"server chose an extension we did not offer: {name}", 502)
            deflate = client_accept_response(params, offered_client_nct=self.client_no_context_takeover)
        protos = head.get_all("sec-websocket-protocol")
        sub: str | None = None
        if protos:
            if len(protos) != 1 or protos[0].strip() not in self.subprotocols:
                raise HandshakeError("server chose a subprotocol we did not offer", 502)
            sub = protos[0].strip()
        return deflate, sub
