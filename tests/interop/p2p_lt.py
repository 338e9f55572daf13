"""libtorrent as a real peer, set up per ../shared/INTEROP.md (loopback, TCP only, no DHT/LSD/UPnP/NAT-PMP)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest


def libtorrent() -> Any:
    try:
        import libtorrent as lt
    except ImportError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"libtorrent is not installed: {exc}")
    return lt


def lt_session(port: int = 0) -> Any:
    lt = libtorrent()
    return lt.session({
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "user_agent": "libtorrent-interop",
        "alert_mask": lt.alert_category.error | lt.alert_category.peer | lt.alert_category.status,
    })


def add(ses: Any, save_path: Path, *, ti: Any = None, magnet: str | None = None, seed_mode: bool = False) -> Any:
    lt = libtorrent()
    atp = lt.parse_magnet_uri(magnet) if magnet else lt.add_torrent_params()
    if ti is not None:
        atp.ti = ti
    atp.save_path = str(save_path)
    if seed_mode:
        atp.flags |= lt.torrent_flags.seed_mode
    return ses.add_torrent(atp)


def torrent_info(data: bytes) -> Any:
    lt = libtorrent()
    return lt.torrent_info(lt.bdecode(data))


async def wait_seeding(handle: Any, timeout: float = 60.0, what: str = "download") -> None:
    async with asyncio.timeout(timeout):
        while True:
            st = handle.status()
            if st.is_seeding:
                return
            if st.errc.value() != 0:
                raise AssertionError(f"libtorrent {what}: {st.errc.message()}")
            await asyncio.sleep(0.1)


def make_files(root: Path, name: str, sizes: dict[str, int]) -> Path:
    d = root / name
    for rel, size in sizes.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
    return d


def lt_make_torrent(src_parent: Path, name: str, piece_size: int, *, hybrid: bool = True) -> bytes:
    """A torrent made by libtorrent (hybrid v1+v2 unless told otherwise)."""
    lt = libtorrent()
    fs = lt.file_storage()
    lt.add_files(fs, str(src_parent / name))
    flags = 0 if hybrid else lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, piece_size, flags)
    lt.set_piece_hashes(ct, str(src_parent))
    return bytes(lt.bencode(ct.generate()))


async def assert_same_tree(a: Path, b: Path, timeout: float = 10.0) -> None:
    """Byte-identical trees. libtorrent reports a piece done before its disk thread has written
    every file, so the comparison is retried (with a deadline) until the files settle."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            same_tree(a, b)
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix != ".torrent")
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.suffix != ".torrent")
    assert fa == fb, (fa, fb)
    for r in fa:
        assert (a / r).read_bytes() == (b / r).read_bytes(), f"{r} differs"
    return True
