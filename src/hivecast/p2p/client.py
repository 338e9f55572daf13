"""The download client: a .torrent file or magnet link in, verified files on disk out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hivecast.p2p.magnet import parse_magnet
from hivecast.p2p.metainfo import read_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent


def open_source(
    source: str, out_dir: Path, *, peers: list[tuple[str, int]] | None = None,
    on_progress: Callable[[Torrent], None] | None = None,
) -> Torrent:
    """A Torrent for a magnet link or a .torrent path (not yet added to a session)."""
    if source.startswith("magnet:"):
        mag = parse_magnet(source)
        return Torrent(info_hash=mag.info_hash, base_dir=out_dir, trackers=list(mag.trackers),
                       peers=[*mag.peers, *(peers or [])], on_progress=on_progress, web_seeds=list(mag.web_seeds))
    meta = read_torrent(source)
    return Torrent.from_metainfo(meta, out_dir, peers=peers, on_progress=on_progress)


async def download(
    source: str, out_dir: Path, *, peers: list[tuple[str, int]] | None = None, timeout: float | None = None,
    options: SessionOptions | None = None, on_progress: Callable[[Torrent], None] | None = None,
    session: Session | None = None,
) -> Torrent:
    """Download until complete (or raise TimeoutError); the torrent stops when done unless a session is given."""
    own = session is None
    sess = session or Session(options)
    if own:
        await sess.start()
    try:
        torrent = await sess.add(open_source(source, Path(out_dir), peers=peers, on_progress=on_progress))
        async with asyncio.timeout(timeout):
            await torrent.completed.wait()
        return torrent
    finally:
        if own:
            await sess.close()
