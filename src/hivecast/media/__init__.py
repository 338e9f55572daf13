"""Media inside a node: live access units and the live stream registry (packaging comes later)."""

from hivecast.media.live import (
    AccessUnit,
    LiveError,
    LiveReader,
    LiveRegistry,
    LiveStream,
    Publisher,
    StreamBusyError,
    StreamEnded,
    StreamNotLiveError,
    TrackInfo,
)

__all__ = [
    "AccessUnit",
    "LiveError",
    "LiveReader",
    "LiveRegistry",
    "LiveStream",
    "Publisher",
    "StreamBusyError",
    "StreamEnded",
    "StreamNotLiveError",
    "TrackInfo",
]
