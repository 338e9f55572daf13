"""RTP and RTCP (RFC 3550), statistics, a jitter buffer and payload formats (H.264, AAC). Sans I/O."""

from hivecast.rtp.errors import MalformedPacket, PayloadError, RtpError
from hivecast.rtp.packet import HeaderExtension, RtpPacket, is_rtcp
from hivecast.rtp.stats import ReceiverStats, SenderStats, round_trip_time

__all__ = [
    "HeaderExtension",
    "MalformedPacket",
    "PayloadError",
    "ReceiverStats",
    "RtpError",
    "RtpPacket",
    "SenderStats",
    "is_rtcp",
    "round_trip_time",
]
