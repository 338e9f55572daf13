"""Chord RPCs and their wire form: one small JSON object per UDP datagram, validated and bounded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hivecast.chord.ring import NodeRef

MAX_DATAGRAM = 4096
MAX_LIST = 16
MAX_URL = 512


class ChordProtocolError(ValueError):
    """A datagram that is not a valid Chord message; it is dropped."""


@dataclass(slots=True)
class Request:
    rid: int
    op: str  # step | get_pred | notify | ping
    sender: NodeRef
    key: int | None = None  # step: the key being resolved
    exclude: list[int] = field(default_factory=list)  # step: ids the asker found dead


@dataclass(slots=True)
class Reply:
    rid: int
    sender: NodeRef
    done: bool = False  # step: `node` is the key's successor (owner)
    node: NodeRef | None = None  # step: owner or next hop; get_pred: predecessor
    successors: list[NodeRef] = field(default_factory=list)


Message = Request | Reply
OPS = ("step", "get_pred", "notify", "ping")


def _ref_out(ref: NodeRef) -> list[Any]:
    return [ref.id, ref.addr[0], ref.addr[1], ref.url]


def _ref_in(value: Any, bits: int) -> NodeRef:
    if (not isinstance(value, list) or len(value) != 4 or not isinstance(value[0], int)
            or not isinstance(value[1], str) or not isinstance(value[2], int) or not isinstance(value[3], str)):
        raise ChordProtocolError("a node is [id, host, port, url]")
    if not 0 <= value[0] < (1 << bits) or not 0 < value[2] < 65536 or len(value[1]) > 64 or len(value[3]) > MAX_URL:
        raise ChordProtocolError("node field out of range")
    return NodeRef(value[0], (value[1], value[2]), value[3])


def encode(msg: Message) -> bytes:
    if isinstance(msg, Request):
        body: dict[str, Any] = {"r": msg.rid, "op": msg.op, "s": _ref_out(msg.sender)}
        if msg.key is not None:
            body["k"] = msg.key
        if msg.exclude:
            body["x"] = msg.exclude[:MAX_LIST]
    else:
        body = {"r": msg.rid, "re": 1, "s": _ref_out(msg.sender), "d": int(msg.done),
                "sl": [_ref_out(n) for n in msg.successors[:MAX_LIST]]}
        if msg.node is not None:
            body["n"] = _ref_out(msg.node)
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes, bits: int) -> Message:
    if len(data) > MAX_DATAGRAM:
        raise ChordProtocolError("datagram too large")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ChordProtocolError("not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("r"), int) or not 0 <= body["r"] < 1 << 32:
        raise ChordProtocolError("missing request id")
    sender = _ref_in(body.get("s"), bits)
    if body.get("re") == 1:
        successors = body.get("sl", [])
        if not isinstance(successors, list) or len(successors) > MAX_LIST:
            raise ChordProtocolError("bad successor list")
        node = body.get("n")
        return Reply(body["r"], sender, body.get("d") == 1, _ref_in(node, bits) if node is not None else None,
                     [_ref_in(s, bits) for s in successors])
    op = body.get("op")
    if op not in OPS:
        raise ChordProtocolError("unknown op")
    key = body.get("k")
    if op == "step" and (not isinstance(key, int) or not 0 <= key < (1 << bits)):
        raise ChordProtocolError("step needs a key on the ring")
    exclude = body.get("x", [])
    if not isinstance(exclude, list) or len(exclude) > MAX_LIST or not all(isinstance(i, int) for i in exclude):
        raise ChordProtocolError("bad exclude list")
    return Request(body["r"], op, sender, key if op == "step" else None, exclude)
