"""Publish credentials from an RTSP request: `?key=` in the URL, or the password of Basic auth."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from hivecast.rtsp.message import Request


def stream_name(uri: str) -> str:
    """The stream name of a request URL: its path without the leading slash or a track suffix."""
    path = urlsplit(uri).path if "://" in uri else uri.split("?", 1)[0]
    return path.strip("/")


def split_track(uri: str) -> tuple[str, str | None]:
    """(stream name, track control) for SETUP URLs such as rtsp://h/live/x/trackID=1."""
    name = stream_name(uri)
    head, _, last = name.rpartition("/")
    if last.startswith(("trackID=", "streamid=")) and head:
        return head, last
    return name, None


def request_key(req: Request) -> str | None:
    query = urlsplit(req.uri).query if "://" in req.uri else req.uri.partition("?")[2]
    keys = parse_qs(query).get("key")
    if keys:
        return keys[0]
    auth = req.headers.get("Authorization")
    if auth and auth[:6].lower() == "basic ":
        try:
            user_pass = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return user_pass.partition(":")[2]
    return None
