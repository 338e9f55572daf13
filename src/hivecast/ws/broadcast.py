"""One message to many connections: frame (and compress) once per parameter set, write the same bytes.

Server frames are never masked, so every connection that negotiated the same deflate parameters
with `server_no_context_takeover` (our server offers it by default), or no deflate at all, can take
the very same bytes. Only connections with a sliding compression window need their own encoding.
A receiver whose write buffer is over its limit is dropped, never waited for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hivecast.ws.connection import WebSocket
from hivecast.ws.protocol import encode_broadcast


@dataclass(slots=True)
class BroadcastResult:
    sent: int = 0
    failed: int = 0  # closed or dropped as slow readers
    encodings: int = 0  # how many times the payload was framed (1 in the common case)


def broadcast(connections: Iterable[WebSocket], data: str | bytes, *, compress_min_size: int = 64,
              compress_level: int = 1) -> BroadcastResult:
    frames: dict[object, bytes] = {}
    plain: bytes | None = None  # the frame for server connections without deflate, the common case
    sent = failed = encodings = 0
    for ws in connections:
        params = ws.deflate
        if params is None and not ws.is_client:
            if plain is None:
                plain = encode_broadcast(data, None)
                encodings += 1
            ok = ws.send_prepared(plain)
        elif ws.is_client:  # clients mask every frame: nothing to share
            encodings += 1
            ok = ws.send_nowait(data)
        elif params is not None and params.server_no_context_takeover:
            frame = frames.get(params)
            if frame is None:
                frame = frames[params] = encode_broadcast(data, params, compress_min_size=compress_min_size,
                                                          compress_level=compress_level)
                encodings += 1
            ok = ws.send_prepared(frame)
        else:  # a sliding compression window of its own
            encodings += 1
            ok = ws.send_nowait(data)
        if ok:
            sent += 1
        else:
            failed += 1
    return BroadcastResult(sent, failed, encodings)
