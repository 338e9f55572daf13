"""Publish credentials from an RTSP request: `?key=` in the URL, the password of Basic auth, or Digest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
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


# --- Digest (RFC 2617 as RTSP uses it, without qop; with qop=auth when the client sends it) ---------
REALM = "hivecast"
NONCE_LIFETIME = 300.0


class NonceIssuer:
    """Stateless nonces: a timestamp and its HMAC under a per-server secret, valid for a few minutes."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(16)

    def issue(self, now: float) -> str:
        stamp = f"{int(now):x}"
        return stamp + hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]

    def valid(self, nonce: str, now: float) -> bool:
        stamp, mac = nonce[:-24], nonce[-24:]
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        good = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return hmac.compare_digest(mac, good) and 0 <= now - issued <= NONCE_LIFETIME


def parse_digest(header: str | None) -> dict[str, str] | None:
    if not header or header[:7].lower() != "digest ":
        return None
    out: dict[str, str] = {}
    for m in re.finditer(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))', header[7:]):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def digest_ok(fields: dict[str, str], method: str, password: str, nonces: NonceIssuer, now: float) -> bool:
    """Check a Digest response against the stream key (the password; any user name)."""
    need = ("username", "realm", "nonce", "uri", "response")
    if any(k not in fields for k in need) or fields["realm"] != REALM or not nonces.valid(fields["nonce"], now):
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{fields['username']}:{REALM}:{password}")
    ha2 = md5(f"{method}:{fields['uri']}")
    if fields.get("qop"):
        expected = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:{fields['qop']}:{ha2}")
    else:
        expected = md5(f"{ha1}:{fields['nonce']}:{ha2}")
    return hmac.compare_digest(expected, fields["response"].lower())
