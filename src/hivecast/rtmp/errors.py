"""RTMP errors: what the peer did wrong (malformed bytes, commands out of order) versus a refusal."""

from __future__ import annotations


class RtmpError(Exception):
    """Base of hivecast.rtmp errors."""


class HandshakeError(RtmpError):
    """The peer's C0/C1/C2 (or S0/S1/S2) bytes are not an RTMP handshake we accept."""


class ChunkError(RtmpError):
    """A malformed chunk stream, or one over our limits (chunk size, message size, chunk streams)."""


class AmfError(RtmpError):
    """A malformed AMF value, or one over the depth/item bounds."""


class FlvError(RtmpError):
    """A malformed FLV tag or codec record."""


class ProtocolError(RtmpError):
    """A command the peer may not send in this state (out of order, unknown stream, too many streams)."""


class StatusError(RtmpError):
    """The other side refused a command with an `_error` or an error-level onStatus."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
