"""The JSON messages of the real-time endpoints (documented in docs/realtime.md).

Client messages are parsed into small dataclasses with every field checked and bounded; anything
else is a `BadMessage` the hub answers with an `error` message (the connection stays open).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_ID = 128
DANMAKU_MODES = ("scroll", "top", "bottom")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class BadMessage(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Chat:
    text: str


@dataclass(frozen=True, slots=True)
class Danmaku:
    text: str
    media_time: float
    color: str = "#ffffff"
    mode: str = "scroll"


@dataclass(frozen=True, slots=True)
class Delete:
    id: str


@dataclass(frozen=True, slots=True)
class Moderate:
    action: str  # mute | unmute | ban | unban
    user: str
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ClientPing:
    pass


ClientMessage = Auth | Chat | Danmaku | Delete | Moderate | ClientPing


def _str(obj: dict[str, Any], key: str, max_len: int) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise BadMessage("bad_request", f"'{key}' must be a non-empty string of at most {max_len} characters")
    return v


def _text(obj: dict[str, Any], max_length: int) -> str:
    v = obj.get("text")
    if not isinstance(v, str):
        raise BadMessage("bad_request", "'text' must be a string")
    v = v.strip()
    if not v:
        raise BadMessage("bad_request", "empty message")
    if len(v) > max_length:
        raise BadMessage("too_long", f"message longer than {max_length} characters")
    return v


def parse_client_message(raw: str | bytes, *, max_length: int) -> ClientMessage:
    if not isinstance(raw, str):
        raise BadMessage("bad_request", "messages are JSON text frames")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("bad_request", "not JSON") from None
    if not isinstance(obj, dict):
        raise BadMessage("bad_request", "a message is a JSON object")
    kind = obj.get("type")
    if kind == "chat":
        return Chat(_text(obj, max_length))
    if kind == "danmaku":
        t = obj.get("media_time")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise BadMessage("bad_request", "'media_time' must be a non-negative number of seconds")
        color = obj.get("color", "#ffffff")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise BadMessage("bad_request", "'color' must look like #rrggbb")
        mode = obj.get("mode", "scroll")
        if mode not in DANMAKU_MODES:
            raise BadMessage("bad_request", f"'mode' must be one of {', '.join(DANMAKU_MODES)}")
        return Danmaku(_text(obj, max_length), float(t), color.lower(), mode)
    if kind == "auth":
        return Auth(_str(obj, "token", 4096))
    if kind == "delete":
        return Delete(_str(obj, "id", MAX_ID))
    if kind in ("mute", "unmute", "ban", "unban"):
        seconds = obj.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not 0 < seconds <= 30 * 86400):
            raise BadMessage("bad_request", "'seconds' must be between 0 and 30 days")
        return Moderate(kind, _str(obj, "user", MAX_ID), float(seconds) if seconds is not None else None)
    if kind == "ping":
        return ClientPing()
    raise BadMessage("bad_request", f"unknown message type {kind!r}")


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def error(code: str, message: str) -> str:
    return dumps({"type": "error", "code": code, "message": message})
