"""Storage: exact budgets, atomic disk commits, index rebuilt after restart, purge by key/prefix/tag."""

from __future__ import annotations

import errno
from pathlib import Path

from hivecast.cdn.store import CacheStore, StoredMeta
from hivecast.http.headers import Headers


def meta(key: str, size: int, tags: list[str] | None = None) -> StoredMeta:
    return StoredMeta(key=key, variant="", vary=[], status=200, headers=[["content-type", "video/mp2t"]],
                      request_time=1.0, response_time=1.0, initial_age=0.0, lifetime=60.0, size=size,
                      tags=tags or [])


def make(root: Path, disk: int = 10_000, policy: str = "lru") -> CacheStore:
    store = CacheStore(root, disk_budget=disk, memory_budget=1000, memory_object_max=100, policy=policy)
    store.open()
    return store


async def put_disk(store: CacheStore, key: str, body: bytes, tags: list[str] | None = None) -> bool:
    writer = store.disk_writer()
    assert writer is not None
    for i in range(0, len(body), 300):
        if not writer.write(body[i:i + 300]):
            return False
    return await store.commit_disk(meta(key, len(body), tags), writer) is not None


async def test_disk_budget_is_never_exceeded(tmp_path: Path) -> None:
    store = make(tmp_path, disk=5000)
    for i in range(20):
        await put_disk(store, f"/seg{i}.ts", bytes([i]) * 1000)
        assert store.disk.used + store.disk.reserved <= 5000
        on_disk = sum(p.stat().st_size for p in (tmp_path / "objects").iterdir())
        assert on_disk == store.disk.used
    assert store.lookup("/seg19.ts", Headers()) is not None
    assert store.lookup("/seg0.ts", Headers()) is None


async def test_object_larger_than_budget_is_not_stored(tmp_path: Path) -> None:
    store = make(tmp_path, disk=1000)
    assert not await put_disk(store, "/big.ts", b"x" * 2000)
    assert store.disk.used == 0 and store.disk.reserved == 0
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_failing_disk_write_abandons_object(tmp_path: Path, monkeypatch: object) -> None:
    store = make(tmp_path)

    def enospc(fd: int, data: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store._write = enospc  # type: ignore[method-assign]
    assert not await put_disk(store, "/a.ts", b"y" * 1000)
    assert store.lookup("/a.ts", Headers()) is None and store.disk.reserved == 0


async def test_index_rebuilt_after_restart_and_partial_objects_dropped(tmp_path: Path) -> None:
    store = make(tmp_path)
    await put_disk(store, "/keep.ts", b"k" * 700, tags=["show1"])
    await put_disk(store, "/torn.ts", b"t" * 700)
    # a crash mid-write leaves a temporary file; a torn body no longer matches its metadata
    (tmp_path / "tmp" / "half.tmp").write_bytes(b"partial")
    torn = store.lookup("/torn.ts", Headers())
    assert torn is not None and torn.path is not None
    torn.path.write_bytes(b"t" * 100)
    (tmp_path / "objects" / "orphan.body").write_bytes(b"o")
    again = make(tmp_path)
    obj = again.lookup("/keep.ts", Headers())
    assert obj is not None and obj.path is not None and obj.path.read_bytes() == b"k" * 700
    assert again.lookup("/torn.ts", Headers()) is None
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "objects" / "orphan.body").exists()
    assert again.purge_tag("show1") == 1


async def test_memory_tier_and_purges(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert store.put_memory(meta("/live/a.m3u8", 50, ["live"]), b"p" * 50) is not None
    assert store.put_memory(meta("/live/b.m3u8", 50), b"p" * 50) is not None
    await put_disk(store, "/vod/x.ts", b"v" * 500)
    assert store.memory.used == 100
    assert store.purge_prefix("/live/") == 2 and store.memory.used == 0
    assert store.purge_key("/vod/x.ts") == 1 and store.disk.used == 0
    assert list((tmp_path / "objects").iterdir()) == []


async def test_memory_budget_evicts(tmp_path: Path) -> None:
    store = make(tmp_path)
    for i in range(30):
        store.put_memory(meta(f"/p{i}", 90), b"m" * 90)
        assert store.memory.used <= 1000
