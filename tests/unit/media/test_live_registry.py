"""The live registry contract: publish handles, bounded readers with GOP-aware drops, events."""

from __future__ import annotations

import asyncio

import pytest

from hivecast.events import InProcessBus
from hivecast.media.live import (
    AccessUnit,
    LiveRegistry,
    StreamBusyError,
    StreamEnded,
    StreamNotLiveError,
    TrackInfo,
)

TRACKS = [TrackInfo(0, "h264", 90000), TrackInfo(1, "aac", 48000, config=b"\x11\x90", channels=2)]


def video(i: int, key: bool = False) -> AccessUnit:
    return AccessUnit(0, "h264", i * 3600, i * 3600, 90000, key, b"\x00\x00\x00\x01\x65" if key else b"\x00\x00\x00\x01\x41")


def audio(i: int) -> AccessUnit:
    return AccessUnit(1, "aac", i * 1024, i * 1024, 48000, True, b"\x21")


async def test_publish_subscribe_events_and_offline() -> None:
    bus = InProcessBus()
    events = bus.subscribe("stream.*")
    registry = LiveRegistry(bus)
    pub = registry.publish("cam", TRACKS, source="test")
    with pytest.raises(StreamBusyError):
        registry.publish("cam", TRACKS)
    reader = registry.subscribe("cam")
    pub.send(video(0, key=True))
    pub.send(audio(0))
    async with asyncio.timeout(1):
        assert (await reader.get()).keyframe
        assert (await reader.get()).codec == "aac"
    info = registry.info("cam")
    assert info is not None and info["state"] == "live" and info["readers"] == 1 and len(info["tracks"]) == 2
    pub.close()
    with pytest.raises(StreamEnded):
        async with asyncio.timeout(1):
            await reader.get()
    assert registry.get("cam") is None
    with pytest.raises(StreamNotLiveError):
        registry.subscribe("cam")
    topics = [events._queue.popleft().topic for _ in range(len(events._queue))]
    assert topics == ["stream.live", "stream.offline"]


async def test_replace_makes_the_old_handle_stale() -> None:
    registry = LiveRegistry(allow_replace=True)
    old = registry.publish("cam", TRACKS)
    new = registry.publish("cam", TRACKS)
    reader = registry.subscribe("cam", from_gop=False)
    old.send(video(0, key=True))
    assert len(reader) == 0 and not old.active
    new.send(video(1, key=True))
    assert len(reader) == 1


async def test_new_reader_starts_at_the_cached_gop() -> None:
    registry = LiveRegistry()
    pub = registry.publish("cam", TRACKS)
    for i in range(10):
        pub.send(video(i, key=(i % 5 == 0)))
        pub.send(audio(i))
    reader = registry.subscribe("cam")
    first = reader.get_nowait()
    assert first is not None and first.keyframe and first.pts == 5 * 3600
    assert len(reader) == 9  # the rest of that GOP: 5 video + 5 audio minus the first


async def test_full_reader_drops_to_next_keyframe_without_touching_others() -> None:
    registry = LiveRegistry()
    pub = registry.publish("cam", TRACKS)
    slow = registry.subscribe("cam", maxlen=8)
    fast = registry.subscribe("cam", maxlen=1000)
    for i in range(25):
        pub.send(video(i, key=(i % 10 == 0)))
    assert fast.dropped == 0 and len(fast) == 25
    assert slow.dropped > 0
    first = slow.get_nowait()
    assert first is not None and first.keyframe  # resumed at a keyframe, never mid-GOP
    seen = [first, *iter(slow.get_nowait, None)]
    pts = [au.pts for au in seen]
    assert pts == sorted(pts) and len(slow) == 0


async def test_sinks_are_called_and_a_failing_sink_is_removed() -> None:
    registry = LiveRegistry()
    pub = registry.publish("cam", TRACKS)
    stream = registry.get("cam")
    assert stream is not None
    got: list[int] = []
    stream.add_sink(lambda au: got.append(au.pts))

    def bad(au: AccessUnit) -> None:
        raise RuntimeError("boom")

    stream.add_sink(bad)
    pub.send(video(0, key=True))
    pub.send(video(1))
    assert got == [0, 3600]
