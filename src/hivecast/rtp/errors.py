"""Errors of the RTP layer: what a peer sent that does not parse."""

from __future__ import annotations


class RtpError(Exception):
    """Base of every error raised by hivecast.rtp."""


class MalformedPacket(RtpError, ValueError):
    """The bytes are not a valid RTP or RTCP packet (the peer's fault)."""


class PayloadError(RtpError, ValueError):
    """A payload does not follow its RTP payload format (RFC 6184, RFC 3640, ...)."""
