"""KRPC messages (BEP 5): bencoded dictionaries over UDP, validated strictly and bounded.

Three message types: a query (`y = q`), a response (`y = r`) and an error (`y = e`). Responses do
not name their method; the caller matches them to the query by transaction id and reads the fields
that method returns. Every field is checked for type and length here, so the rest of the DHT only
sees well-formed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hivecast.dht.errors import KrpcError
from hivecast.dht.ids import ID_BYTES, Address, NodeInfo, decode_nodes, decode_peer, encode_nodes, encode_peer
from hivecast.p2p.bencode import decode, encode
from hivecast.p2p.errors import BencodeError

MAX_DATAGRAM = 2048  # KRPC packets fit one MTU; anything larger is not from a real DHT node
MAX_TID = 16
MAX_TOKEN = 64
MAX_METHOD = 32
MAX_NODES = 32  # compact nodes in one reply (BEP 5 sends k = 8; some send 16)
MAX_VALUES = 256
MAX_VERSION = 16

# BEP 5 error codes
GENERIC_ERROR = 201
SERVER_ERROR = 202
PROTOCOL_ERROR = 203
METHOD_UNKNOWN = 204

KNOWN_METHODS = ("ping", "find_node", "get_peers", "announce_peer", "get", "put")
MAX_ITEM = 1000  # BEP 44: a stored value's bencoded form is at most 1000 bytes
MAX_DEPTH = 12  # BEP 44 values are any bencoded value: allow some nesting, not unbounded
MESSAGE_TOO_BIG = 205
INVALID_SIGNATURE = 206
MAX_SALT_WIRE = 256  # longer than BEP 44's 64 so the node can answer "salt too big" (207) itself
MAX_SEQ = (1 << 63) - 1


@dataclass(slots=True)
class Query:
    t: bytes
    method: str
    sender: bytes
    target: bytes | None = None  # find_node: target; get_peers and announce_peer: info_hash
    port: int | None = None
    implied_port: bool = False
    token: bytes | None = None
    read_only: bool = False  # BEP 43: the sender does not answer queries
    version: bytes | None = None
    value: Any = None  # BEP 44 put: the item
    # BEP 44 mutable items: put carries k, sig, seq (salt, cas optional); get may carry seq
    k: bytes | None = None
    sig: bytes | None = None
    seq: int | None = None
    salt: bytes = b""
    cas: int | None = None

    @property
    def mutable(self) -> bool:
        return self.k is not None


@dataclass(slots=True)
class Response:
    t: bytes
    sender: bytes
    nodes: list[NodeInfo] | None = None
    values: list[Address] | None = None
    token: bytes | None = None
    ip: Address | None = None  # BEP 42: the address the responder saw us at
    version: bytes | None = None
    value: Any = None  # BEP 44 get: the stored item
    k: bytes | None = None  # BEP 44 get of a mutable item: its key, signature and sequence number
    sig: bytes | None = None
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Error:
    t: bytes
    code: int
    message: str


Message = Query | Response | Error


def _bytes(d: dict[bytes, Any], key: bytes, *, size: int | None = None, max_size: int | None = None,
           required: bool = True) -> bytes | None:
    value = d.get(key)
    if value is None:
        if required:
            raise KrpcError(f"missing {key.decode()!r}")
        return None
    if not isinstance(value, bytes):
        raise KrpcError(f"{key.decode()!r} must be a string")
    if size is not None and len(value) != size:
        raise KrpcError(f"{key.decode()!r} must be {size} bytes")
    if max_size is not None and len(value) > max_size:
        raise KrpcError(f"{key.decode()!r} longer than {max_size} bytes")
    return value


def _int(d: dict[bytes, Any], key: bytes, low: int, high: int) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or not low <= value <= high:
        raise KrpcError(f"{key.decode()!r} must be an integer in {low}..{high}")
    return value


def decode_message(data: bytes) -> Message:
    """Parse one datagram. Raises KrpcError for anything malformed, oversized or ill-typed."""
    if len(data) > MAX_DATAGRAM:
        raise KrpcError(f"datagram of {len(data)} bytes over the {MAX_DATAGRAM}-byte limit")
    try:
        top = decode(data, max_depth=MAX_DEPTH)
    except BencodeError as exc:
        raise KrpcError(f"not bencode: {exc}") from None
    if not isinstance(top, dict):
        raise KrpcError("a KRPC message is a dictionary")
    t = _bytes(top, b"t", max_size=MAX_TID)
    assert t is not None
    if not t:
        raise KrpcError("empty transaction id")
    y = top.get(b"y")
    version = _bytes(top, b"v", max_size=MAX_VERSION, required=False)
    if y == b"q":
        return _decode_query(top, t, version)
    if y == b"r":
        return _decode_response(top, t, version)
    if y == b"e":
        err = top.get(b"e")
        if (not isinstance(err, list) or len(err) < 2 or not isinstance(err[0], int)
                or not isinstance(err[1], bytes) or len(err[1]) > 256):
            raise KrpcError("'e' must be [code, message]")
        return Error(t, err[0], err[1].decode("utf-8", "replace"))
    raise KrpcError("'y' must be q, r or e")


def _decode_query(top: dict[bytes, Any], t: bytes, version: bytes | None) -> Query:
    method_raw = _bytes(top, b"q", max_size=MAX_METHOD)
    assert method_raw is not None
    try:
        method = method_raw.decode("ascii")
    except UnicodeDecodeError:
        raise KrpcError("method name is not ASCII") from None
    args = top.get(b"a")
    if not isinstance(args, dict):
        raise KrpcError("'a' must be a dictionary")
    sender = _bytes(args, b"id", size=ID_BYTES)
    assert sender is not None
    query = Query(t, method, sender, version=version, read_only=top.get(b"ro") == 1)
    if method == "find_node":
        query.target = _bytes(args, b"target", size=ID_BYTES)
    elif method == "get_peers":
        query.target = _bytes(args, b"info_hash", size=ID_BYTES)
    elif method == "announce_peer":
        query.target = _bytes(args, b"info_hash", size=ID_BYTES)
        query.token = _bytes(args, b"token", max_size=MAX_TOKEN)
        query.implied_port = _int(args, b"implied_port", 0, 1) == 1
        port = _int(args, b"port", 0 if query.implied_port else 1, 65535)
        if port is None and not query.implied_port:
            raise KrpcError("announce_peer needs a port")
        query.port = port
    elif method == "get":
        query.target = _bytes(args, b"target", size=ID_BYTES)
        query.seq = _int(args, b"seq", 0, MAX_SEQ)
    elif method == "put":
        query.token = _bytes(args, b"token", max_size=MAX_TOKEN)
        if b"v" not in args:
            raise KrpcError("put needs a value")
        query.value = args[b"v"]
        if b"k" in args:
            query.k = _bytes(args, b"k", size=32)
            query.sig = _bytes(args, b"sig", size=64)
            query.seq = _int(args, b"seq", 0, MAX_SEQ)
            if query.seq is None:
                raise KrpcError("a mutable put needs seq")
            query.salt = _bytes(args, b"salt", max_size=MAX_SALT_WIRE, required=False) or b""
            query.cas = _int(args, b"cas", 0, MAX_SEQ)
    return query


def _decode_response(top: dict[bytes, Any], t: bytes, version: bytes | None) -> Response:
    r = top.get(b"r")
    if not isinstance(r, dict):
        raise KrpcError("'r' must be a dictionary")
    sender = _bytes(r, b"id", size=ID_BYTES)
    assert sender is not None
    resp = Response(t, sender, version=version)
    nodes = _bytes(r, b"nodes", max_size=26 * MAX_NODES, required=False)
    if nodes is not None:
        try:
            resp.nodes = decode_nodes(nodes)
        except ValueError as exc:
            raise KrpcError(str(exc)) from None
    values = r.get(b"values")
    if values is not None:
        if not isinstance(values, list) or len(values) > MAX_VALUES:
            raise KrpcError(f"'values' must be a list of at most {MAX_VALUES} peers")
        peers = []
        for item in values:
            if not isinstance(item, bytes) or len(item) not in (6, 18):
                raise KrpcError("'values' holds compact peers of 6 (or 18) bytes")
            if len(item) == 6:  # IPv6 peers (18 bytes) are legal but not used by this IPv4 node
                addr = decode_peer(item)
                if addr[1]:
                    peers.append(addr)
        resp.values = peers
    resp.token = _bytes(r, b"token", max_size=MAX_TOKEN, required=False)
    if b"v" in r:
        resp.value = r[b"v"]
    resp.k = _bytes(r, b"k", size=32, required=False)
    resp.sig = _bytes(r, b"sig", size=64, required=False)
    resp.seq = _int(r, b"seq", 0, MAX_SEQ)
    ip = top.get(b"ip")
    if isinstance(ip, bytes) and len(ip) == 6:
        resp.ip = decode_peer(ip)
    return resp


def encode_message(msg: Message, *, read_only: bool = False) -> bytes:
    top: dict[bytes, Any] = {b"t": msg.t}
    if isinstance(msg, Query):
        args: dict[bytes, Any] = {b"id": msg.sender}
        if msg.method in ("find_node", "get"):
            args[b"target"] = msg.target
            if msg.method == "get" and msg.seq is not None:
                args[b"seq"] = msg.seq
        elif msg.method == "put":
            args[b"token"] = msg.token or b""
            args[b"v"] = msg.value
            if msg.k is not None:
                args.update({b"k": msg.k, b"sig": msg.sig or b"", b"seq": msg.seq or 0})
                if msg.salt:
                    args[b"salt"] = msg.salt
                if msg.cas is not None:
                    args[b"cas"] = msg.cas
        elif msg.method in ("get_peers", "announce_peer"):
            args[b"info_hash"] = msg.target
        if msg.method == "announce_peer":
            args[b"port"] = msg.port or 0
            args[b"token"] = msg.token or b""
            if msg.implied_port:
                args[b"implied_port"] = 1
        top.update({b"y": b"q", b"q": msg.method.encode(), b"a": args})
        if msg.read_only or read_only:
            top[b"ro"] = 1
    elif isinstance(msg, Response):
        body: dict[bytes, Any] = {b"id": msg.sender}
        if msg.nodes is not None:
            body[b"nodes"] = encode_nodes(msg.nodes)
        if msg.values is not None:
            body[b"values"] = [encode_peer(a) for a in msg.values]
        if msg.token is not None:
            body[b"token"] = msg.token
        if msg.value is not None:
            body[b"v"] = msg.value
        if msg.k is not None:
            body[b"k"] = msg.k
        if msg.sig is not None:
            body[b"sig"] = msg.sig
        if msg.seq is not None:
            body[b"seq"] = msg.seq
        top.update({b"y": b"r", b"r": body})
        if msg.ip is not None:
            top[b"ip"] = encode_peer(msg.ip)
    else:
        top.update({b"y": b"e", b"e": [msg.code, msg.message.encode()]})
    if msg is not None and not isinstance(msg, Error) and msg.version is not None:
        top[b"v"] = msg.version
    return encode(top)


def transaction_id_of(data: bytes) -> bytes | None:
    """Best-effort tid from a datagram we could not parse, so the error reply can carry it."""
    try:
        top = decode(data[:MAX_DATAGRAM], max_depth=MAX_DEPTH)
    except BencodeError:
        return None
    if isinstance(top, dict):
        t = top.get(b"t")
        if isinstance(t, bytes) and 0 < len(t) <= MAX_TID:
            return t
    return None
