"""Torrent metainfo (BEP 3): v1 single- and multi-file, reading hybrid v1+v2 (BEP 52, BEP 47 pad files).

Parsing checks every rule a peer could abuse: safe path components, piece counts that match the
total length, bounded numbers of files and pieces. Creating v1 torrents hashes pieces in an
executor so the event loop never runs SHA-1 over a whole video.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivecast.p2p import bencode
from hivecast.p2p.errors import BencodeError, MetainfoError

BLOCK_SIZE = 16 * 1024
MAX_PIECE_LENGTH = 64 * 1024 * 1024
MAX_FILES = 100_000
MAX_PIECES = 4_000_000
MAX_TORRENT_BYTES = 64 * 1024 * 1024
MAX_METADATA_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the v1 layout, in piece-space order; pad files (BEP 47) hold zeros and are not stored."""

    path: tuple[str, ...]
    length: int
    offset: int
    pad: bool = False


@dataclass(frozen=True, slots=True)
class InfoDict:
    name: str
    piece_length: int
    piece_hashes: tuple[bytes, ...]
    files: tuple[FileEntry, ...]
    multi_file: bool
    private: bool
    raw: bytes
    info_hash: bytes
    info_hash_v2: bytes | None = None

    @property
    def total_length(self) -> int:
        last = self.files[-1] if self.files else None
        return last.offset + last.length if last else 0

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes)

    def piece_size(self, index: int) -> int:
        if index < self.num_pieces - 1:
            return self.piece_length
        return self.total_length - self.piece_length * (self.num_pieces - 1)

    @property
    def hybrid(self) -> bool:
        return self.info_hash_v2 is not None


@dataclass(frozen=True, slots=True)
class Metainfo:
    info: InfoDict
    announce: str | None = None
    announce_list: tuple[tuple[str, ...], ...] = ()
    url_list: tuple[str, ...] = ()
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None

    @property
    def trackers(self) -> list[str]:
        """Every tracker URL once, tiers flattened, `announce` first."""
        urls: list[str] = []
        for url in [self.announce, *(u for tier in self.announce_list for u in tier)]:
            if url and url not in urls:
                urls.append(url)
        return urls


def _text(value: Any, what: str) -> str:
    if not isinstance(value, bytes):
        raise MetainfoError(f"{what} is not a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise MetainfoError(f"{what} is not UTF-8") from None


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise MetainfoError(f"{what} must be an integer in [{lo}, {hi}]")
    return value


def _component(value: Any, what: str) -> str:
    part = _text(value, what)
    # A path component that climbs out of the download directory or names a drive is an attack.
    if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part or ":" in part[1:2]:
        raise MetainfoError(f"{what} {part!r} is not a safe file name")
    return part


def parse_info(raw: bytes) -> InfoDict:
    """Parse an info dictionary from its exact bytes (those bytes are what the info-hash covers)."""
    try:
        info = bencode.decode(raw, max_size=MAX_METADATA_BYTES)
    except BencodeError as exc:
        raise MetainfoError(f"info dictionary: {exc}") from None
    if not isinstance(info, dict):
        raise MetainfoError("info is not a dictionary")
    name = _component(info.get(b"name"), "info.name")
    piece_length = _int(info.get(b"piece length"), "piece length", BLOCK_SIZE, MAX_PIECE_LENGTH)
    pieces = info.get(b"pieces")
    v2 = info.get(b"meta version") == 2
    if pieces is None and v2:
        raise MetainfoError("v2-only torrents are not supported (no v1 piece hashes)")
    if not isinstance(pieces, bytes) or len(pieces) % 20:
        raise MetainfoError("pieces is not a multiple of 20 bytes")
    hashes = tuple(pieces[i : i + 20] for i in range(0, len(pieces), 20))
    if len(hashes) > MAX_PIECES:
        raise MetainfoError("too many pieces")
    files: list[FileEntry] = []
    multi = b"files" in info
    if multi:
        if b"length" in info:
            raise MetainfoError("info has both length and files")
        entries = info[b"files"]
        if not isinstance(entries, list) or not entries or len(entries) > MAX_FILES:
            raise MetainfoError(f"files must be a non-empty list of at most {MAX_FILES} entries")
        offset = 0
        seen: set[tuple[str, ...]] = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise MetainfoError(f"files[{i}] is not a dictionary")
            length = _int(entry.get(b"length"), f"files[{i}].length", 0, 2**53)
            raw_path = entry.get(b"path")
            if not isinstance(raw_path, list) or not raw_path or len(raw_path) > 64:
                raise MetainfoError(f"files[{i}].path must be a non-empty list")
            path = tuple(_component(p, f"files[{i}].path") for p in raw_path)
            attr = entry.get(b"attr", b"")
            pad = isinstance(attr, bytes) and b"p" in attr
            if not pad:
                if path in seen:
                    raise MetainfoError(f"files[{i}].path {'/'.join(path)} appears twice")
                seen.add(path)
            files.append(FileEntry(path, length, offset, pad))
            offset += length
        total = offset
    else:
        total = _int(info.get(b"length"), "length", 0, 2**53)
        files.append(FileEntry((name,), total, 0))
    if len(hashes) != math.ceil(total / piece_length):
        raise MetainfoError(f"{len(hashes)} piece hashes for {total} bytes in pieces of {piece_length}")
    private = info.get(b"private") == 1
    return InfoDict(
        name=name,
        piece_length=piece_length,
        piece_hashes=hashes,
        files=tuple(files),
        multi_file=multi,
        private=private,
        raw=raw,
        info_hash=hashlib.sha1(raw).digest(),
        info_hash_v2=hashlib.sha256(raw).digest() if v2 else None,
    )


def parse_torrent(data: bytes) -> Metainfo:
    """Parse a .torrent file."""
    if len(data) > MAX_TORRENT_BYTES:
        raise MetainfoError("torrent file too large")
    try:
        top = bencode.decode(data, max_size=MAX_TORRENT_BYTES)
    except BencodeError as exc:
        raise MetainfoError(f"torrent: {exc}") from None
    if not isinstance(top, dict) or not isinstance(top.get(b"info"), dict):
        raise MetainfoError("torrent has no info dictionary")
    # Strict decoding means the info dictionary re-encodes to exactly its original bytes.
    info = parse_info(bencode.encode(top[b"info"]))
    announce = top.get(b"announce")
    tiers: list[tuple[str, ...]] = []
    raw_tiers = top.get(b"announce-list")
    if isinstance(raw_tiers, list):
        for tier in raw_tiers[:64]:
            if isinstance(tier, list):
                urls = tuple(u.decode("utf-8", "replace") for u in tier[:64] if isinstance(u, bytes))
                if urls:
                    tiers.append(urls)
    url_list = top.get(b"url-list")
    if isinstance(url_list, bytes):
        url_list = [url_list]
    seeds = tuple(u.decode("utf-8", "replace") for u in (url_list or [])[:64] if isinstance(u, bytes) and u)
    comment = top.get(b"comment")
    created_by = top.get(b"created by")
    date = top.get(b"creation date")
    return Metainfo(
        info=info,
        announce=announce.decode("utf-8", "replace") if isinstance(announce, bytes) and announce else None,
        announce_list=tuple(tiers),
        url_list=seeds,
        comment=comment.decode("utf-8", "replace") if isinstance(comment, bytes) else None,
        created_by=created_by.decode("utf-8", "replace") if isinstance(created_by, bytes) else None,
        creation_date=date if isinstance(date, int) else None,
    )


def read_torrent(path: os.PathLike[str] | str) -> Metainfo:
    with open(path, "rb") as f:
        data = f.read(MAX_TORRENT_BYTES + 1)
    return parse_torrent(data)


def encode_torrent(
    raw_info: bytes,
    *,
    announce: Sequence[str] = (),
    web_seeds: Sequence[str] = (),
    comment: str | None = None,
    created_by: str = "hivecast",
    creation_date: int | None = None,
    piece_layers: dict[bytes, bytes] | None = None,
) -> bytes:
    """Wrap an info dictionary (given as its exact bytes) into a .torrent file."""
    top: dict[str, Any] = {"info": bencode.decode(raw_info), "created by": created_by}
    if piece_layers is not None:
        top["piece layers"] = piece_layers
    if announce:
        top["announce"] = announce[0]
        if len(announce) > 1:
            top["announce-list"] = [[url] for url in announce]
    if web_seeds:
        top["url-list"] = list(web_seeds)
    if comment:
        top["comment"] = comment
    top["creation date"] = int(time.time()) if creation_date is None else creation_date
    return bencode.encode(top)


def auto_piece_length(total: int) -> int:
    """Aim for about 1,000-2,000 pieces, between 16 KiB and 4 MiB, a power of two."""
    length = BLOCK_SIZE
    while length < 4 * 1024 * 1024 and total / length > 1500:
        length *= 2
    return length


def list_files(root: Path) -> list[tuple[tuple[str, ...], Path]]:
    """Regular files below root in a stable order (sorted by path), skipping hidden and partial files."""
    out: list[tuple[tuple[str, ...], Path]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if not path.is_file() or any(p.startswith(".") for p in rel) or path.suffix in (".torrent", ".part", ".tmp"):
            continue
        out.append((rel, path))
    return out


def hash_pieces(paths: Iterable[Path], piece_length: int) -> bytes:
    """SHA-1 of every piece across the concatenated files (blocking: run it in an executor)."""
    digests: list[bytes] = []
    buf = bytearray()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(max(piece_length, 1 << 20)):
                buf += chunk
                while len(buf) >= piece_length:
                    digests.append(hashlib.sha1(memoryview(buf)[:piece_length]).digest())
                    del buf[:piece_length]
    if buf:
        digests.append(hashlib.sha1(buf).digest())
    return b"".join(digests)


def build_info(
    root: Path, *, name: str | None = None, piece_length: int | None = None,
    files: Sequence[str] | None = None, private: bool = False,
) -> bytes:
    """Make the exact bytes of a v1 info dictionary for a file or a directory (blocking)."""
    root = Path(root)
    if root.is_file():
        length = root.stat().st_size
        plen = piece_length or auto_piece_length(length)
        info: dict[str, Any] = {
            "name": name or root.name, "length": length, "piece length": plen,
            "pieces": hash_pieces([root], plen),
        }
    else:
        if files is not None:
            entries = [(tuple(Path(rel).parts), root / rel) for rel in sorted(files)]
            for rel, path in entries:
                if not path.is_file() or ".." in rel:
                    raise MetainfoError(f"{'/'.join(rel)} is not a file under {root}")
        else:
            entries = list_files(root)
        if not entries:
            raise MetainfoError(f"{root} has no files")
        total = sum(p.stat().st_size for _, p in entries)
        plen = piece_length or auto_piece_length(total)
        info = {
            "name": name or root.name,
            "piece length": plen,
            "files": [{"length": p.stat().st_size, "path": list(rel)} for rel, p in entries],
            "pieces": hash_pieces([p for _, p in entries], plen),
        }
    if private:
        info["private"] = 1
    raw = bencode.encode(info)
    parse_info(raw)  # our own output obeys our own rules
    return raw


def _merkle_root(hashes: list[bytes], pad: bytes) -> bytes:
    """Root of a binary SHA-256 tree over `hashes`, padded to a power of two with `pad` (BEP 52)."""
    if not hashes:
        return pad
    width = 1
    while width < len(hashes):
        width *= 2
    layer = hashes + [pad] * (width - len(hashes))
    while len(layer) > 1:
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = hashlib.sha256(pad + pad).digest()
    return layer[0]


def _hash_file_hybrid(path: Path, length: int, piece_length: int, pad_tail: bool) -> tuple[bytes, bytes, bytes]:
    """(v1 piece hashes, v2 pieces root, v2 piece layer) for one file, each file starting on a piece."""
    v1: list[bytes] = []
    leaves: list[bytes] = []
    with open(path, "rb") as f:
        while chunk := f.read(piece_length):
            for i in range(0, len(chunk), BLOCK_SIZE):
                leaves.append(hashlib.sha256(chunk[i : i + BLOCK_SIZE]).digest())
            if len(chunk) < piece_length and pad_tail:
                chunk += bytes(piece_length - len(chunk))  # the BEP 47 pad file's zeros
            v1.append(hashlib.sha1(chunk).digest())
    zero = bytes(32)
    per_piece = piece_length // BLOCK_SIZE
    if len(leaves) <= per_piece:
        return b"".join(v1), _merkle_root(leaves, zero), b""
    pieces: list[bytes] = []
    for i in range(0, len(leaves), per_piece):
        # The last piece's subtree is padded with zero leaves, and so is the tree above the pieces.
        block_hashes = leaves[i : i + per_piece]
        pieces.append(_merkle_root(block_hashes + [zero] * (per_piece - len(block_hashes)), zero))
    pad_piece = _merkle_root([zero] * per_piece, zero)
    return b"".join(v1), _merkle_root(pieces, pad_piece), b"".join(pieces)


def build_hybrid_info(
    root: Path, *, name: str | None = None, piece_length: int | None = None, files: Sequence[str] | None = None,
) -> tuple[bytes, dict[bytes, bytes]]:
    """A hybrid v1+v2 info dictionary (BEP 52, pad files per BEP 47) and its piece layers (blocking).

    Laid out as libtorrent does: every non-empty file starts on a piece boundary and is followed
    by a pad file up to the next one, so v1 and v2 see the same pieces.
    """
    root = Path(root)
    entries: list[tuple[tuple[str, ...], Path]]
    if root.is_file():
        entries = [((root.name,), root)]
    elif files is not None:
        entries = [(tuple(Path(rel).parts), root / rel) for rel in sorted(files)]
    else:
        entries = list_files(root)
    # v2 file trees are dictionaries, so the file order is the sorted path order.
    entries.sort(key=lambda e: [p.encode() for p in e[0]])
    if not entries:
        raise MetainfoError(f"{root} has no files")
    total = sum(p.stat().st_size for _, p in entries)
    plen = piece_length or auto_piece_length(total)
    if plen < BLOCK_SIZE or plen & (plen - 1):
        raise MetainfoError("a hybrid torrent needs a power-of-two piece length of at least 16 KiB")
    single = root.is_file()
    tree: dict[str, Any] = {}
    v1_files: list[dict[str, Any]] = []
    hashes: list[bytes] = []
    layers: dict[bytes, bytes] = {}
    for rel, path in entries:
        length = path.stat().st_size
        node: dict[str, Any] = tree
        for part in rel[:-1]:
            node = node.setdefault(part, {})
        leaf: dict[str, Any] = {"length": length}
        v1_files.append({"length": length, "path": list(rel)})
        if length:
            # A single-file torrent has no pad file: its last v1 piece is short.
            v1, pieces_root, layer = _hash_file_hybrid(path, length, plen, pad_tail=not single)
            hashes.append(v1)
            leaf["pieces root"] = pieces_root
            if layer:
                layers[pieces_root] = layer
            if length % plen:
                pad = plen - length % plen
                v1_files.append({"attr": "p", "length": pad, "path": [".pad", str(pad)]})
        node[rel[-1]] = {"": leaf}
    info: dict[str, Any] = {
        "name": name or root.name, "piece length": plen, "meta version": 2,
        "file tree": tree if not single else {name or root.name: tree[root.name]},
        "pieces": b"".join(hashes),
    }
    if single:
        info["length"] = total
    else:
        info["files"] = v1_files
    raw = bencode.encode(info)
    parse_info(raw)
    return raw, layers


_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    # hashlib releases the GIL on large buffers, so threads hash in parallel with the loop.
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="p2p-hash")
    return _pool


async def create_torrent(
    root: Path, *, announce: Sequence[str] = (), web_seeds: Sequence[str] = (), name: str | None = None,
    piece_length: int | None = None, files: Sequence[str] | None = None, comment: str | None = None,
    hybrid: bool = False,
) -> bytes:
    """Make a .torrent (v1, or hybrid v1+v2) for a file or directory, hashing off the event loop."""
    loop = asyncio.get_running_loop()
    layers: dict[bytes, bytes] | None = None
    if hybrid:
        raw, layers = await loop.run_in_executor(
            _executor(), lambda: build_hybrid_info(root, name=name, piece_length=piece_length, files=files))
    else:
        raw = await loop.run_in_executor(
            _executor(), lambda: build_info(root, name=name, piece_length=piece_length, files=files))
    return encode_torrent(raw, announce=announce, web_seeds=web_seeds, comment=comment, piece_layers=layers)


@dataclass(slots=True)
class FileSpan:
    """Part of a piece that lives in one file."""

    file_index: int
    file_offset: int
    length: int
    piece_offset: int


@dataclass(slots=True)
class Layout:
    """Pure mapping from piece-space byte ranges to file ranges."""

    info: InfoDict
    _starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._starts = [f.offset for f in self.info.files]

    def spans(self, piece: int, begin: int, length: int) -> list[FileSpan]:
        import bisect

        start = piece * self.info.piece_length + begin
        end = start + length
        if begin < 0 or length < 0 or end > self.info.total_length:
            raise MetainfoError("range outside the torrent")
        out: list[FileSpan] = []
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        pos = start
        files = self.info.files
        while pos < end and i < len(files):
            f = files[i]
            f_end = f.offset + f.length
            if f_end > pos:
                n = min(end, f_end) - pos
                out.append(FileSpan(i, pos - f.offset, n, pos - start))
                pos += n
            i += 1
        return out


__all__ = [
    "BLOCK_SIZE",
    "FileEntry",
    "FileSpan",
    "InfoDict",
    "Layout",
    "Metainfo",
    "auto_piece_length",
    "build_info",
    "create_torrent",
    "encode_torrent",
    "hash_pieces",
    "list_files",
    "parse_info",
    "parse_torrent",
    "read_torrent",
]
