"""The busy object: readers stream a growing body; memory stays bounded for large bodies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hivecast.cdn.coalesce import Fetch


async def collect(fetch: Fetch, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in fetch.stream(start, end)])


async def test_readers_stream_while_the_body_grows() -> None:
    fetch = Fetch("/k", read_timeout=5)
    readers = [asyncio.ensure_future(collect(fetch)), asyncio.ensure_future(collect(fetch, 3, 7))]
    for part in (b"abc", b"defg", b"hij"):
        await asyncio.sleep(0)
        fetch.feed(part)
    fetch.finish()
    assert await readers[0] == b"abcdefghij"
    assert await readers[1] == b"defg"
    assert fetch.body() == b"abcdefghij"


async def test_failure_reaches_readers_mid_body() -> None:
    fetch = Fetch("/k", read_timeout=5)
    reader = asyncio.ensure_future(collect(fetch))
    fetch.feed(b"abc")
    await asyncio.sleep(0)
    fetch.fail(ConnectionError("origin reset"))
    with pytest.raises(ConnectionError):
        await reader


async def test_memory_is_bounded_and_slow_readers_use_the_backing_file(tmp_path: Path) -> None:
    backing = tmp_path / "body.tmp"
    backing.write_bytes(b"")
    fetch = Fetch("/big", read_timeout=5, max_buffer=1000)
    fetch.set_backing(backing)
    data = bytes(range(256)) * 40  # 10240 bytes in 100-byte chunks
    with backing.open("ab") as fh:
        fh.write(data[:100])
        fh.flush()
        fetch.backed_up_to(100)
        fetch.feed(data[:100])
        slow = fetch.stream()
        first = await slow.__anext__()  # the slow reader took one piece, then stalls
        for i in range(100, len(data), 100):
            fh.write(data[i:i + 100])
            fh.flush()
            fetch.backed_up_to(i + 100)
            fetch.feed(data[i:i + 100])
            assert fetch.size - fetch.floor <= 1100
    fetch.finish()
    rest = b"".join([piece async for piece in slow])
    assert first + rest == data
    assert fetch.can_read_from(0)  # a late joiner can still read everything from the file
    assert await collect(fetch) == data
    fetch.release()
    assert fetch.backing_fd is None


async def test_without_backing_only_passed_bytes_are_dropped() -> None:
    fetch = Fetch("/big", read_timeout=5, max_buffer=1000)
    reader = fetch.stream()
    await asyncio.sleep(0)
    got: list[bytes] = []
    for i in range(50):
        fetch.feed(bytes([i]) * 100)
        got.append(await reader.__anext__())
    assert fetch.floor > 0 and not fetch.can_read_from(0)
    fetch.finish()
    got.extend([p async for p in reader])
    assert b"".join(got) == b"".join(bytes([i]) * 100 for i in range(50))
