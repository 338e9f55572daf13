"""Opus over RTP (RFC 7587): one Opus packet per RTP packet, a 48 kHz clock whatever the input rate."""

from __future__ import annotations

from hivecast.rtp.errors import PayloadError

CLOCK_RATE = 48000
MAX_PACKET = 1275 * 3  # RFC 6716: at most 120 ms of up to 1275-byte frames


def packetize(packet: bytes) -> list[tuple[bytes, bool]]:
    if not packet or len(packet) > MAX_PACKET:
        raise PayloadError("Opus packet empty or too large")
    return [(packet, True)]


def depacketize(payload: bytes) -> bytes:
    if not payload or len(payload) > MAX_PACKET:
        raise PayloadError("Opus payload empty or too large")
    return payload
