"""Errors of the RTSP layer, each carrying the status code the server answers with."""

from __future__ import annotations


class RtspError(Exception):
    """Base of hivecast.rtsp errors; `status` is the RTSP status code that reports it."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class ProtocolError(RtspError):
    """The peer sent bytes that are not RTSP (framing, syntax, limits): answer and close."""

    status = 400


class MessageTooLarge(ProtocolError):
    status = 413


class SdpError(RtspError):
    """A session description that does not parse or lacks what we need."""

    status = 400


class SessionNotFound(RtspError):
    status = 454


class MethodNotValid(RtspError):
    """Method not valid in this state (RFC 2326 section 11.3.6)."""

    status = 455


class UnsupportedTransport(RtspError):
    status = 461


class StreamNotFound(RtspError):
    status = 404


class Unauthorized(RtspError):
    status = 401


class Forbidden(RtspError):
    status = 403


class StreamBusy(RtspError):
    """A publisher already holds this stream name."""

    status = 453  # Not Enough Bandwidth is what other servers use; 453 keeps ffmpeg's message clear


class ClientError(RtspError):
    """Our client got an error from the server or could not reach it."""
