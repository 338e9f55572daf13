"""A torrent's files on disk: pieces to file ranges, SHA-1 verification, resume by re-checking.

A piece is only written once its whole content hashed correctly, so a bad block can never land
on disk as good data; pad files (BEP 47) are virtual zeros and never created. Reads and writes
use pread/pwrite on cached descriptors; a check of what is already on disk (resume) runs in a
thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
from pathlib import Path

from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.errors import StorageError
from hivecast.p2p.metainfo import InfoDict, Layout


class Storage:
    def __init__(self, info: InfoDict, base_dir: Path, *, read_only: bool = False) -> None:
        """Files live at base_dir/name (single file) or base_dir/name/path... (multi-file)."""
        self.info = info
        self.layout = Layout(info)
        self.read_only = read_only
        root = Path(base_dir) / info.name
        self.paths: list[Path | None] = []
        for f in info.files:
            if f.pad:
                self.paths.append(None)
            else:
                self.paths.append(root.joinpath(*f.path) if info.multi_file else root)
        self._fds: dict[int, int] = {}
        # Whole pieces recently read for upload: one pread per piece instead of one per 16 KiB
        # block (a peer asks for a piece's blocks back to back). Small and bounded.
        self._piece_cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self.piece_cache_size = 8 if info.piece_length <= 4 * 1024 * 1024 else 0

    def _fd(self, i: int, *, write: bool) -> int:
        fd = self._fds.get(i)
        if fd is not None:
            return fd
        path = self.paths[i]
        assert path is not None
        try:
            if write and not self.read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            else:
                fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"{path}: {exc.strerror}") from None
        self._fds[i] = fd
        return fd

    def read_block(self, index: int, begin: int, length: int) -> bytes | memoryview:
        """A block to upload, through the small whole-piece cache (a view: no copy per block)."""
        if not self.piece_cache_size:
            return self.read(index, begin, length)
        piece = self._piece_cache.get(index)
        if piece is None:
            piece = self.read(index, 0, self.info.piece_size(index))
            self._piece_cache[index] = piece
            while len(self._piece_cache) > self.piece_cache_size:
                self._piece_cache.popitem(last=False)
        else:
            self._piece_cache.move_to_end(index)
        if begin + length > len(piece):
            raise StorageError("block past the end of the piece")
        return memoryview(piece)[begin : begin + length]

    def read(self, index: int, begin: int, length: int) -> bytes:
        """A block of a piece; raises StorageError if a file is missing or short."""
        spans = self.layout.spans(index, begin, length)
        if len(spans) == 1 and self.paths[spans[0].file_index] is not None:
            s = spans[0]
            data = os.pread(self._fd(s.file_index, write=not self.read_only), s.length, s.file_offset)
            if len(data) != s.length:
                raise StorageError(f"{self.paths[s.file_index]}: short read")
            return data
        out = bytearray()
        for s in spans:
            if self.paths[s.file_index] is None:
                out += bytes(s.length)
                continue
            chunk = os.pread(self._fd(s.file_index, write=not self.read_only), s.length, s.file_offset)
            if len(chunk) != s.length:
                raise StorageError(f"{self.paths[s.file_index]}: short read")
            out += chunk
        return bytes(out)

    def verify(self, index: int, data: bytes | bytearray) -> bool:
        return hashlib.sha1(data).digest() == self.info.piece_hashes[index]

    def write_piece(self, index: int, data: bytes | bytearray) -> None:
        """Write a verified piece (the caller checked it with verify())."""
        if self.read_only:
            raise StorageError("storage is read-only")
        view = memoryview(data)
        for s in self.layout.spans(index, 0, len(data)):
            if self.paths[s.file_index] is None:
                continue
            fd = self._fd(s.file_index, write=True)
            os.pwrite(fd, view[s.piece_offset : s.piece_offset + s.length], s.file_offset)

    def write_if_valid(self, index: int, data: bytes | bytearray) -> bool:
        """Verify then write; the thread-pool friendly unit of work for a finished piece."""
        if not self.verify(index, data):
            return False
        self.write_piece(index, data)
        return True

    def check_existing(self) -> Bitfield:
        """Hash every piece whose bytes are on disk (blocking; run it in a thread)."""
        have = Bitfield(self.info.num_pieces)
        sizes = {}
        for i, path in enumerate(self.paths):
            if path is not None:
                try:
                    sizes[i] = path.stat().st_size
                except OSError:
                    sizes[i] = -1
        for index in range(self.info.num_pieces):
            spans = self.layout.spans(index, 0, self.info.piece_size(index))
            if any(self.paths[s.file_index] is not None and sizes[s.file_index] < s.file_offset + s.length
                   for s in spans):
                continue
            try:
                data = self.read(index, 0, self.info.piece_size(index))
            except StorageError:
                continue
            if self.verify(index, data):
                have.add(index)
        return have

    async def check_existing_async(self) -> Bitfield:
        return await asyncio.to_thread(self.check_existing)

    def sync_sizes(self) -> None:
        """Give every finished file its full length (a torrent may end in zero bytes we never wrote)."""
        for i, path in enumerate(self.paths):
            if path is None or self.read_only:
                continue
            fd = self._fd(i, write=True)
            if os.fstat(fd).st_size < self.info.files[i].length:
                os.ftruncate(fd, self.info.files[i].length)

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()


__all__ = ["Storage"]
