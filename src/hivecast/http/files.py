"""Serving files from a directory: safe paths, validators, conditional requests and byte ranges.

This is the origin's media store as HTTP (RFC 9110 sections 13 and 14); the edge cache sits in
front of it and relies on the ETag/Last-Modified it emits.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from hivecast.http.message import FileBody, Request, Response

MEDIA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".ts": "video/mp2t",
    ".aac": "audio/aac",
    ".flv": "video/x-flv",
    ".torrent": "application/x-bittorrent",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}


def media_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return MEDIA_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def default_cache_control(path: str) -> str:
    """Playlists and manifests change; segments never do once written."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".m3u8", ".mpd"):
        return "public, max-age=1"
    if ext in (".ts", ".m4s", ".mp4", ".m4a", ".aac", ".torrent"):
        return "public, max-age=86400"
    return "public, max-age=60"


def safe_join(root: Path, relative: str) -> Path | None:
    """The file under root that `relative` names, or None if it would leave root."""
    if "\x00" in relative or "\\" in relative:
        return None
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    candidate = root.joinpath(*parts) if parts else root
    try:
        resolved = candidate.resolve()
        root_resolved = root.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved != root_resolved and root_resolved not in resolved.parents:
        return None
    return resolved


def etag_for(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def _etag_matches(header: str, etag: str) -> bool:
    # Weak comparison (RFC 9110 8.8.3.2) for If-None-Match.
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as (start, end inclusive); None to ignore it; False if unsatisfiable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return False
            return (max(0, size - n), size - 1) if size else False
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return False
    if start < 0 or end < start:
        return None
    return start, min(end, size - 1)


class StaticFiles:
    """A handler serving files below `root` at paths below the route's prefix."""

    def __init__(self, root: Path, *, cache_control: Callable[[str], str] = default_cache_control,
                 index: str | None = None) -> None:
        self.root = root
        self.cache_control = cache_control
        self.index = index

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, [("allow", "GET, HEAD"), ("content-type", "text/plain")], b"method not allowed\n")
        relative = request.path[len(request.route_prefix):]
        path = safe_join(self.root, relative)
        if path is None:
            return Response.text("bad path\n", status=400)
        try:
            st = path.stat()
            if stat.S_ISDIR(st.st_mode) and self.index:
                path = path / self.index
                st = path.stat()
        except OSError:
            return Response.text("not found\n", status=404)
        if not stat.S_ISREG(st.st_mode):
            return Response.text("not found\n", status=404)
        return file_response(request, path, st, self.cache_control(str(path)))


def file_response(request: Request, path: Path, st: os.stat_result, cache_control: str) -> Response:
    etag = etag_for(st)
    last_modified = formatdate(st.st_mtime, usegmt=True)
    headers = [
        ("content-type", media_type(str(path))),
        ("etag", etag),
        ("last-modified", last_modified),
        ("cache-control", cache_control),
        ("accept-ranges", "bytes"),
    ]
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if _etag_matches(inm, etag):
            return Response(304, headers)
    else:
        ims = request.headers.get("if-modified-since")
        if ims is not None:
            try:
                if int(st.st_mtime) <= parsedate_to_datetime(ims).timestamp():
                    return Response(304, headers)
            except (TypeError, ValueError, OverflowError):
                pass
    size = st.st_size
    range_header = request.headers.get("range")
    if range_header is not None and request.method == "GET":
        if_range = request.headers.get("if-range")
        if if_range is None or if_range.strip() in (etag, last_modified):
            rng = parse_range(range_header, size)
            if rng is False:
                return Response(416, [*headers, ("content-range", f"bytes */{size}")], b"")
            if isinstance(rng, tuple):
                start, end = rng
                headers.append(("content-range", f"bytes {start}-{end}/{size}"))
                return Response(206, headers, FileBody(path, start, end - start + 1))
    return Response(200, headers, FileBody(path, 0, size))
