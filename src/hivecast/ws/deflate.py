"""RFC 7692 permessage-deflate: parameter negotiation for both sides and the per-message codec.

Window bits 8: zlib refuses a raw deflate stream with an 8-bit window (it silently means 9), so
when we must compress within a 256-byte window we use Huffman-only coding, which emits no
back-references at all and is therefore valid for any window size.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from hivecast.ws.errors import HandshakeError, MessageTooBig, PeerProtocolError

EXTENSION_NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """Negotiated parameters, named as in RFC 7692 section 7.1."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def header_value(self) -> str:
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


def parse_extension_header(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Sec-WebSocket-Extensions (RFC 6455 section 9.1): [(name, [(param, value|None)])], in offer order."""
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        for item in _split_outside_quotes(value, ","):
            item = item.strip()
            if not item:
                continue
            pieces = _split_outside_quotes(item, ";")
            name = pieces[0].strip().lower()
            if not _is_token(name):
                raise HandshakeError(f"malformed extension name {name!r}")
            params: list[tuple[str, str | None]] = []
            for piece in pieces[1:]:
                piece = piece.strip()
                if not piece:
                    raise HandshakeError("empty extension parameter")
                if "=" in piece:
                    k, v = piece.split("=", 1)
                    k, v = k.strip().lower(), v.strip()
                    if len(v) >= 2 and v[0] == v[-1] == '"':
                        v = v[1:-1]
                    if not _is_token(k) or not v or not _is_token(v):
                        raise HandshakeError(f"malformed extension parameter {piece!r}")
                    params.append((k, v))
                else:
                    k = piece.lower()
                    if not _is_token(k):
                        raise HandshakeError(f"malformed extension parameter {piece!r}")
                    params.append((k, None))
            out.append((name, params))
    return out


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(s: str) -> bool:
    return bool(s) and all(c in _TOKEN_CHARS for c in s)


def _split_outside_quotes(s: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for c in s:
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _bits(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 2 or not 8 <= int(value) <= 15:
        raise ValueError(f"invalid window bits {value!r}")
    return int(value)


def server_accept_offer(params: list[tuple[str, str | None]], *, force_server_no_context_takeover: bool
                        ) -> DeflateParams | None:
    """Server side of section 7.1: the parameters to accept one client offer with, or None to decline it."""
    seen: set[str] = set()
    snct = cnct = False
    smwb = cmwb = 15
    client_bits_offered = False
    try:
        for name, value in params:
            if name in seen:
                return None
            seen.add(name)
            if name == "server_no_context_takeover":
                if value is not None:
                    return None
                snct = True
            elif name == "client_no_context_takeover":
                if value is not None:
                    return None
                cnct = True
            elif name == "server_max_window_bits":
                smwb = _bits(value)
            elif name == "client_max_window_bits":
                client_bits_offered = True
                if value is not None:
                    cmwb = _bits(value)
            else:
                return None
    except ValueError:
        return None
    del client_bits_offered  # we never limit the client's window unless asked: 15 is the default
    return DeflateParams(server_no_context_takeover=snct or force_server_no_context_takeover,
                         client_no_context_takeover=cnct, server_max_window_bits=smwb,
                         client_max_window_bits=cmwb)


def client_offer(*, client_no_context_takeover: bool = False) -> str:
    """What our client offers: deflate, letting the server limit our window if it wants to."""
    value = f"{EXTENSION_NAME}; client_max_window_bits"
    if client_no_context_takeover:
        value += "; client_no_context_takeover"
    return value


def client_accept_response(params: list[tuple[str, str | None]], *, offered_client_nct: bool = False
                           ) -> DeflateParams:
    """Client side of section 7.1: validate the server's answer to our offer (raise if it is bad)."""
    seen: set[str] = set()
    snct = cnct = False
    smwb = cmwb = 15
    try:
        for name, value in params:
            if name in seen:
                raise HandshakeError(f"duplicate extension parameter {name}")
            seen.add(name)
            if name == "server_no_context_takeover" and value is None:
                snct = True
            elif name == "client_no_context_takeover" and value is None:
                cnct = True
            elif name == "server_max_window_bits":
                smwb = _bits(value)
            elif name == "client_max_window_bits":
                cmwb = _bits(value)
            else:
                raise HandshakeError(f"unexpected permessage-deflate parameter {name}")
    except ValueError as exc:
        raise HandshakeError(str(exc)) from None
    return DeflateParams(server_no_context_takeover=snct, client_no_context_takeover=cnct or offered_client_nct,
                         server_max_window_bits=smwb, client_max_window_bits=cmwb)


class Compressor:
    """Compresses whole messages (section 7.2.1), keeping the LZ77 window between them unless told not to."""

    __slots__ = ("_level", "_no_context", "_obj", "_wbits")

    def __init__(self, max_window_bits: int, no_context_takeover: bool, level: int = 1) -> None:
        self._wbits = max_window_bits
        self._no_context = no_context_takeover
        self._level = level
        self._obj = self._new() if not no_context_takeover else None

    def _new(self) -> zlib._Compress:
        if self._wbits == 8:
            return zlib.compressobj(self._level, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY)
        return zlib.compressobj(self._level, zlib.DEFLATED, -self._wbits, 8)

    def compress(self, data: bytes) -> bytes:
        obj = self._obj if self._obj is not None else self._new()
        out = obj.compress(data) + obj.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_TAIL):
            out = out[:-4]
        if not out:
            out = b"\x00"  # an empty stored block: section 7.2.3.6
        return out


class Decompressor:
    """Decompresses messages frame by frame, never producing more than `max_size` bytes per message."""

    __slots__ = ("_obj", "_produced", "_wbits", "max_size", "no_context_takeover")

    def __init__(self, max_window_bits: int, no_context_takeover: bool, max_size: int) -> None:
        self._wbits = max_window_bits
        self.no_context_takeover = no_context_takeover
        self.max_size = max_size
        self._obj = zlib.decompressobj(-max_window_bits)
        self._produced = 0

    def feed(self, data: bytes, final: bool) -> bytes:
        """Inflate one frame's payload of the current message; `final` on its last frame."""
        if final:
            data += _TAIL
        budget = self.max_size - self._produced
        try:
            out = self._obj.decompress(data, budget + 1)
        except zlib.error as exc:
            raise PeerProtocolError(f"invalid deflate data: {exc}", 1007) from None
        self._produced += len(out)
        if self._produced > self.max_size or self._obj.unconsumed_tail:
            raise MessageTooBig(f"decompressed message over the {self.max_size} byte limit")
        if final:
            self._produced = 0
            if self.no_context_takeover:
                self._obj = zlib.decompressobj(-self._wbits)
        return out
