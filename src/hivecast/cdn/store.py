"""Cache storage: a memory tier for small hot objects and a disk tier for segments.

Each tier has an exact byte budget (bodies plus, on disk, their metadata files) and its own
eviction policy instance. Disk writes are atomic: the body goes to a temporary file and is
renamed, then the metadata file is written the same way; the metadata rename is the commit. At
start the index is rebuilt from metadata files whose body exists with the recorded size;
temporary files and orphan bodies are deleted, so a partly written object is never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hivecast.cdn.policies import EvictionPolicy, make_policy
from hivecast.cdn.vary import secondary_key
from hivecast.http.headers import Headers

log = logging.getLogger(__name__)

META_VERSION = 1


@dataclass(slots=True)
class StoredMeta:
    key: str                      # primary key: path and query
    variant: str                  # digest of the normalized Vary values
    vary: list[str]               # field names the response varies on
    status: int
    headers: list[list[str]]      # stored response fields (hop-by-hop removed)
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    size: int
    tags: list[str] = field(default_factory=list)
    body_file: str | None = None  # disk tier: file name under the objects dir
    version: int = META_VERSION

    @property
    def object_id(self) -> str:
        return object_id(self.key, self.variant)

    def header_list(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers]

    def expires(self) -> float:
        return self.response_time - self.initial_age + self.lifetime


def object_id(key: str, variant: str) -> str:
    return hashlib.sha256(f"{key}\n{variant}".encode()).hexdigest()[:32]


def variant_of(vary: list[str], request_headers: Headers) -> str:
    if not vary:
        return ""
    values = secondary_key(tuple(vary), request_headers)
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


@dataclass(slots=True)
class StoredObject:
    meta: StoredMeta
    body: bytes | None = None     # memory tier
    path: Path | None = None      # disk tier
    base: list[tuple[str, str]] | None = None  # header list as sent on hits (built once)
    directives: Any = None        # parsed ResponseDirectives, cached by the edge
    oid: str = ""                 # object id, set when indexed
    wire: tuple[str, bytes, Any] | None = None  # (Age, Date, RawResponse) of the last plain GET hit


class _Tier:
    def __init__(self, name: str, budget: int, policy: str) -> None:
        self.name = name
        self.budget = budget
        self.used = 0
        self.reserved = 0
        self.policy: EvictionPolicy = make_policy(policy, budget)
        self.objects: dict[str, StoredObject] = {}


class DiskWriter:
    """One object being written to the disk tier while it is fetched."""

    def __init__(self, store: CacheStore, path: Path) -> None:
        self._store = store
        self.tmp = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.size = 0
        self.failed = False

    def write(self, data: bytes) -> bool:
        """Append data; False (and the write is abandoned) if over budget or the disk fails."""
        if self.failed or self._fd is None:
            return False
        if not self._store._reserve(self._store.disk, len(data)):
            self.abort("over the disk budget")
            return False
        self.size += len(data)
        try:
            view = memoryview(data)
            while view:
                n = self._store._write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self.abort(f"disk write failed: {exc.strerror or exc}")
            return False
        return True

    def abort(self, why: str = "aborted") -> None:
        if self.failed:
            return
        self.failed = True
        self._store.disk.reserved -= self.size
        self.size = 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            self.tmp.unlink()
        log.debug("cache write abandoned: %s", why)

    async def finish(self) -> int | None:
        """fsync and close; the fd, or None if the write failed."""
        if self.failed or self._fd is None:
            return None
        fd, self._fd = self._fd, None
        try:
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
        except OSError as exc:
            self._fd = fd
            self.abort(f"fsync failed: {exc}")
            return None
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return 0


class CacheStore:
    def __init__(self, root: Path, *, disk_budget: int, memory_budget: int, memory_object_max: int,
                 policy: str = "lru") -> None:
        self.root = root
        self.objects_dir = root / "objects"
        self.tmp_dir = root / "tmp"
        self.memory = _Tier("memory", memory_budget, policy)
        self.disk = _Tier("disk", disk_budget, policy)
        self.memory_object_max = memory_object_max
        self._variants: dict[str, dict[str, str]] = {}   # key -> {variant: object id}
        self._vary: dict[str, list[str]] = {}           # key -> vary fields of its latest response
        self._tags: dict[str, set[str]] = {}             # tag -> object ids
        self._costs: dict[str, int] = {}                 # object id -> bytes it counts against its tier
        self.evictions = 0
        self.write_failures = 0

    # ---- start-up ----
    def open(self) -> int:
        """Create directories and rebuild the disk index; returns the number of objects found."""
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():  # partly written objects from before a crash
            with contextlib.suppress(OSError):
                leftover.unlink()
        referenced: set[str] = set()
        found: list[tuple[float, StoredObject, int]] = []
        for meta_path in self.objects_dir.glob("*.meta"):
            try:
                raw = json.loads(meta_path.read_text())
                meta = StoredMeta(**raw)
                if meta.version != META_VERSION or meta.body_file is None:
                    raise ValueError("old format")
                body = self.objects_dir / meta.body_file
                if body.stat().st_size != meta.size:
                    raise ValueError("body size differs from its metadata")
            except (OSError, ValueError, TypeError) as exc:
                log.info("dropping cache object %s: %s", meta_path.name, exc)
                with contextlib.suppress(OSError):
                    meta_path.unlink()
                continue
            referenced.add(meta.body_file)
            found.append((meta.response_time, StoredObject(meta, path=body), meta.size + meta_path.stat().st_size))
        for body_path in self.objects_dir.glob("*.body"):
            if body_path.name not in referenced:
                with contextlib.suppress(OSError):
                    body_path.unlink()
        found.sort(key=lambda item: item[0])  # oldest first into the policy
        for _, obj, cost in found:
            if self.disk.used + cost > self.disk.budget:
                self._unlink_files(obj.meta)
                continue
            self._index(self.disk, obj, cost)
        return len(self.disk.objects)

    # ---- lookups ----
    def variants(self, key: str) -> list[StoredObject]:
        ids = self._variants.get(key, {})
        out = []
        for oid in ids.values():
            obj = self.memory.objects.get(oid) or self.disk.objects.get(oid)
            if obj is not None:
                out.append(obj)
        return out

    def lookup(self, key: str, request_headers: Headers, *, touch: bool = True) -> StoredObject | None:
        vary = self._vary.get(key)
        if vary is None:
            return None
        variant = variant_of(vary, request_headers)
        oid = self._variants.get(key, {}).get(variant)
        if oid is None:
            return None
        for tier in (self.memory, self.disk):
            obj = tier.objects.get(oid)
            if obj is not None:
                if touch:
                    tier.policy.hit(oid)
                return obj
        return None

    def touch(self, obj: StoredObject) -> None:
        oid = obj.oid or obj.meta.object_id
        (self.memory if obj.body is not None else self.disk).policy.hit(oid)

    def keys(self) -> Iterator[str]:
        return iter(list(self._variants))

    @property
    def object_count(self) -> int:
        return len(self.memory.objects) + len(self.disk.objects)

    # ---- budget ----
    def _reserve(self, tier: _Tier, n: int) -> bool:
        if n > tier.budget:
            return False
        while tier.used + tier.reserved + n > tier.budget:
            victim = tier.policy.victim()
            if victim is None:
                return False
            self._drop(tier, victim)
            self.evictions += 1
        tier.reserved += n
        return True

    def _write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    # ---- writing ----
    def disk_writer(self) -> DiskWriter | None:
        try:
            return DiskWriter(self, self.tmp_dir / f"{secrets.token_hex(12)}.tmp")
        except OSError as exc:
            self.write_failures += 1
            log.warning("cannot open a cache file: %s", exc)
            return None

    def put_memory(self, meta: StoredMeta, body: bytes) -> StoredObject | None:
        size = len(body)
        if not self._reserve(self.memory, size):
            return None
        self.memory.reserved -= size
        obj = StoredObject(meta, body=body)
        self._replace(meta)
        self._index(self.memory, obj, size)
        return obj

    async def commit_disk(self, meta: StoredMeta, writer: DiskWriter) -> StoredObject | None:
        """Make a finished disk write visible: rename the body, then write and rename the meta."""
        reserved = writer.size
        if await writer.finish() is None or reserved != meta.size:
            writer.abort("incomplete")
            self.write_failures += 1
            return None
        name = f"{meta.object_id}-{secrets.token_hex(4)}"
        meta.body_file = f"{name}.body"
        body_path = self.objects_dir / meta.body_file
        meta_bytes = json.dumps(asdict(meta), separators=(",", ":")).encode()
        try:
            if not self._reserve(self.disk, len(meta_bytes)):
                raise OSError("no room for metadata")
            self.disk.reserved -= len(meta_bytes)
            os.replace(writer.tmp, body_path)
            tmp_meta = self.tmp_dir / f"{name}.meta.tmp"
            _write_synced(tmp_meta, meta_bytes)
            os.replace(tmp_meta, self.objects_dir / f"{name}.meta")
        except OSError as exc:
            log.warning("cache commit failed: %s", exc)
            self.write_failures += 1
            self.disk.reserved -= reserved
            with contextlib.suppress(OSError):
                body_path.unlink()
            with contextlib.suppress(OSError):
                writer.tmp.unlink()
            return None
        self.disk.reserved -= reserved
        obj = StoredObject(meta, path=body_path)
        self._replace(meta)
        self._index(self.disk, obj, reserved + len(meta_bytes))
        return obj

    def update_meta(self, obj: StoredObject, headers: list[tuple[str, str]], *, request_time: float,
                    response_time: float, initial_age: float, lifetime: float) -> None:
        """Freshen a stored response from a 304 (RFC 9111 4.3.4)."""
        meta = obj.meta
        obj.base = None
        obj.directives = None
        obj.wire = None
        meta.headers = [[k, v] for k, v in headers]
        meta.request_time, meta.response_time = request_time, response_time
        meta.initial_age, meta.lifetime = initial_age, lifetime
        tier = self.memory if obj.body is not None else self.disk
        tier.policy.remove(meta.object_id)
        tier.policy.insert(meta.object_id, meta.size, expires=meta.expires())
        if obj.path is not None and meta.body_file is not None:
            name = meta.body_file.removesuffix(".body")
            data = json.dumps(asdict(meta), separators=(",", ":")).encode()
            tmp = self.tmp_dir / f"{name}.meta.tmp"
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self.objects_dir / f"{name}.meta")
            except OSError as exc:
                log.warning("could not rewrite cache metadata: %s", exc)

    # ---- index bookkeeping ----
    def _replace(self, meta: StoredMeta) -> None:
        """A new response for a key replaces the stored one for its variant; a changed Vary
        drops the other variants (they were selected by other fields)."""
        old_vary = self._vary.get(meta.key)
        if old_vary is not None and old_vary != meta.vary:
            self.purge_key(meta.key)
        else:
            oid = meta.object_id
            for tier in (self.memory, self.disk):
                if oid in tier.objects:
                    self._drop(tier, oid)
                    tier.policy.remove(oid)

    def _index(self, tier: _Tier, obj: StoredObject, cost: int) -> None:
        meta = obj.meta
        oid = obj.oid = meta.object_id
        tier.objects[oid] = obj
        tier.used += cost
        self._costs[oid] = cost
        tier.policy.insert(oid, cost, expires=meta.expires())
        self._variants.setdefault(meta.key, {})[meta.variant] = oid
        self._vary[meta.key] = meta.vary
        for tag in meta.tags:
            self._tags.setdefault(tag, set()).add(oid)

    def _drop(self, tier: _Tier, oid: str) -> None:
        """Forget an object the policy already let go of, and delete its files."""
        obj = tier.objects.pop(oid, None)
        if obj is None:
            return
        tier.used -= self._costs.pop(oid, 0)
        meta = obj.meta
        variants = self._variants.get(meta.key)
        if variants is not None and variants.get(meta.variant) == oid:
            del variants[meta.variant]
            if not variants:
                del self._variants[meta.key]
                self._vary.pop(meta.key, None)
        for tag in meta.tags:
            ids = self._tags.get(tag)
            if ids is not None:
                ids.discard(oid)
                if not ids:
                    del self._tags[tag]
        if obj.path is not None:
            self._unlink_files(meta)

    def _unlink_files(self, meta: StoredMeta) -> None:
        if meta.body_file is None:
            return
        name = meta.body_file.removesuffix(".body")
        for suffix in (".meta", ".body"):  # meta first: a crash in between leaves an orphan body
            with contextlib.suppress(OSError):
                (self.objects_dir / f"{name}{suffix}").unlink()

    def remove_object(self, oid: str) -> bool:
        for tier in (self.memory, self.disk):
            if oid in tier.objects:
                tier.policy.remove(oid)
                self._drop(tier, oid)
                return True
        return False

    # ---- purge ----
    def purge_key(self, key: str) -> int:
        ids = list(self._variants.get(key, {}).values())
        return sum(self.remove_object(oid) for oid in ids)

    def purge_prefix(self, prefix: str) -> int:
        return sum(self.purge_key(k) for k in list(self._variants) if k.startswith(prefix))

    def purge_tag(self, tag: str) -> int:
        return sum(self.remove_object(oid) for oid in list(self._tags.get(tag, ())))

    def purge_all(self) -> int:
        return sum(self.purge_key(k) for k in list(self._variants))


def _write_synced(path: Path, data: bytes) -> None:
    """Small metadata files: written and fsynced inline (a few hundred bytes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
