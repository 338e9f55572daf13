"""A small bounded HTTP/1.1 GET over hivecast.net, enough to announce to HTTP trackers."""

from __future__ import annotations

from urllib.parse import urlsplit

from hivecast.net import ConnectionLimits, NetError, connect
from hivecast.p2p.errors import TrackerError

MAX_BODY = 1024 * 1024


async def http_get(url: str, *, timeout: float = 10.0, max_body: int = MAX_BODY) -> bytes:
    status, body = await http_request(url, timeout=timeout, max_body=max_body)
    if status != 200:
        raise TrackerError(f"tracker answered HTTP {status}")
    return body


async def http_request(
    url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0, max_body: int = MAX_BODY,
) -> tuple[int, bytes]:
    """(status, body) of a GET; raises TrackerError on transport or framing errors."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TrackerError(f"unsupported tracker URL {url}")
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    limits = ConnectionLimits(idle_timeout=timeout)
    try:
        conn = await connect(parts.hostname, port, limits=limits, timeout=timeout)
    except NetError as exc:
        raise TrackerError(f"tracker unreachable: {exc}") from None
    try:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: hivecast\r\n{extra}"
                   f"Connection: close\r\n\r\n".encode())
        await conn.drain()
        data = bytearray()
        while chunk := await conn.read(65536):
            data += chunk
            if len(data) > max_body + 16384:
                raise TrackerError("tracker response too large")
    except NetError as exc:
        raise TrackerError(f"tracker: {exc}") from None
    finally:
        await conn.close()
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise TrackerError("tracker sent no HTTP response")
    status_line, *header_lines = head.split(b"\r\n")
    fields = status_line.split(b" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        raise TrackerError(f"bad HTTP status line {status_line[:80].decode('latin-1')}")
    fields_map = {k.strip().lower(): v.strip() for k, _, v in (h.partition(b":") for h in header_lines)}
    if fields_map.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif b"content-length" in fields_map and fields_map[b"content-length"].isdigit():
        body = body[: int(fields_map[b"content-length"])]
    return int(fields[1]), body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            raise TrackerError("bad chunked body")
        try:
            size = int(data[pos:line_end].split(b";")[0], 16)
        except ValueError:
            raise TrackerError("bad chunk size") from None
        if size == 0:
            return bytes(out)
        out += data[line_end + 2 : line_end + 2 + size]
        pos = line_end + 4 + size
