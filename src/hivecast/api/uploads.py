"""Resumable upload storage (the server side of tus 1.0 core): bytes are appended to a partial
file and fsynced before the PATCH is acknowledged, so an acknowledged offset survives a crash;
the finished file is hash-checked and moved into place with an atomic rename.

The partial file's size is the upload offset: after a restart it is read back from disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

_EXT = re.compile(r"^\.[a-z0-9]{1,8}$")
_WRITE_BATCH = 1024 * 1024


class OffsetMismatch(Exception):
    def __init__(self, expected: int) -> None:
        super().__init__(f"upload offset is {expected}")
        self.expected = expected


class ChunkChecksumMismatch(Exception):
    pass


class UploadStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial = root / ".partial"
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    def part_path(self, upload_id: str) -> Path:
        return self.partial / upload_id

    def final_path(self, upload_id: str, filename: str | None) -> Path:
        ext = Path(filename).suffix.lower() if filename else ""
        return self.root / upload_id / ("source" + (ext if _EXT.match(ext) else ".bin"))

    def offset(self, upload_id: str) -> int:
        try:
            return self.part_path(upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, upload_id: str, offset: int, limit: int, chunks: AsyncIterator[bytes],
                     checksum: bytes | None = None) -> int:
        """Write the body at `offset` (which must be the current one); returns the new offset.

        Whatever arrived before a client disconnect stays written (it is at the right place), so
        the client resumes from the offset a HEAD reports. With a per-chunk checksum (tus
        checksum extension) a mismatching chunk is cut off again."""
        self.partial.mkdir(parents=True, exist_ok=True)
        path = self.part_path(upload_id)
        current = self.offset(upload_id)
        if current != offset:
            raise OffsetMismatch(current)
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_CREAT, 0o600)
        digest = hashlib.sha256() if checksum is not None else None
        written = 0
        try:
            buf = bytearray()
            try:
                async for chunk in chunks:
                    if written + len(buf) + len(chunk) > limit:
                        raise ValueError("chunk runs past the declared upload length")
                    buf += chunk
                    if len(buf) >= _WRITE_BATCH:
                        written += await asyncio.to_thread(_pwrite_all, fd, bytes(buf), offset + written)
                        if digest is not None:
                            digest.update(buf)
                        buf.clear()
            finally:
                if buf:
                    written += await asyncio.to_thread(_pwrite_all, fd, bytes(buf), offset + written)
                    if digest is not None:
                        digest.update(buf)
                await asyncio.to_thread(os.fsync, fd)
            if digest is not None and digest.digest() != checksum:
                await asyncio.to_thread(os.ftruncate, fd, offset)
                await asyncio.to_thread(os.fsync, fd)
                raise ChunkChecksumMismatch()
        finally:
            await asyncio.to_thread(os.close, fd)
        return offset + written

    async def finish(self, upload_id: str, filename: str | None, sha256: str | None) -> tuple[Path, str]:
        """Hash the whole file (in a thread), check it, and move it into place atomically."""
        part = self.part_path(upload_id)
        actual = await asyncio.to_thread(_sha256_file, part)
        if sha256 is not None and actual != sha256:
            raise ValueError("sha256 mismatch")
        final = self.final_path(upload_id, filename)
        await asyncio.to_thread(_move_durably, part, final)
        return final, actual

    async def reset(self, upload_id: str) -> None:
        await asyncio.to_thread(_unlink, self.part_path(upload_id))

    async def remove(self, upload_id: str, filename: str | None) -> None:
        await asyncio.to_thread(_unlink, self.part_path(upload_id))
        final = self.final_path(upload_id, filename)
        await asyncio.to_thread(_unlink, final)
        await asyncio.to_thread(_rmdir, final.parent)
        self._locks.pop(upload_id, None)


def _pwrite_all(fd: int, data: bytes, offset: int) -> int:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    return done


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_durably(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    _fsync_dir(src.parent)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
