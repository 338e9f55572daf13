"""BitTorrent throughput on loopback: libtorrent vs our seeder and our client, in one run.

    .venv/bin/python bench/bt_bench.py --process [--size-mb 200] [--piece-kb 1024] [--repeat 3]

Three transfers of the same torrent (TCP only, settings per ../shared/INTEROP.md):
  1. libtorrent seed  -> libtorrent client   (the bar)
  2. our seeder       -> libtorrent client   (our upload)
  3. libtorrent seed  -> our client          (our download)
and UDP tracker announces per second (connect once, then announce in a window of 64 in flight).
Prints MB/s and each ratio against the libtorrent-to-libtorrent figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import libtorrent as lt

from hivecast.net import install_event_loop_policy
from hivecast.p2p.metainfo import create_torrent, parse_torrent
from hivecast.p2p.session import Session, SessionOptions, Torrent
from hivecast.p2p.tracker.core import TrackerCore, TrackerLimits
from hivecast.p2p.tracker.server import UdpTracker
from hivecast.p2p.tracker.udp import announce_request, connect_request


def lt_session() -> Any:
    # Plaintext handshakes for every transfer: by default libtorrent first tries an MSE/PE
    # encrypted handshake, which we do not speak, and retries in plaintext a second later; that
    # retry would be counted against us, so libtorrent-to-libtorrent runs without it too.
    return lt.session({
        "listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "allow_multiple_connections_per_ip": True, "enable_outgoing_utp": False,
        "enable_incoming_utp": False, "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
    })


def lt_add(ses: Any, data: bytes, save: Path) -> Any:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(lt.bdecode(data))
    atp.save_path = str(save)
    return ses.add_torrent(atp)


async def wait(pred: Any, timeout: float = 600) -> None:
    """Poll libtorrent from a thread: its calls block until its network thread answers, and
    blocking our event loop on them would stall our own peer in the same process."""
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(pred):
            await asyncio.sleep(0.02)


def drop_file(path: Path) -> None:
    """Evict a file from the page cache where allowed, so each run reads like the first."""
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    except (OSError, AttributeError):
        pass


async def lt_to_lt(data: bytes, src: Path, work: Path, size: int) -> float:
    seed, leech = lt_session(), lt_session()
    hs = lt_add(seed, data, src)
    await wait(lambda: hs.status().is_seeding)
    hl = lt_add(leech, data, work / "lt2lt")
    t0 = time.perf_counter()
    hl.connect_peer(("127.0.0.1", seed.listen_port()))
    await wait(lambda: hl.status().is_seeding)
    return size / (time.perf_counter() - t0) / 1e6


async def ours_to_lt(data: bytes, src: Path, work: Path, size: int) -> float:
    sess = Session(SessionOptions())
    await sess.start()
    try:
        await sess.add(Torrent.from_metainfo(parse_torrent(data), src, seed_only=True, trust_complete=True))
        leech = lt_session()
        hl = lt_add(leech, data, work / "ours2lt")
        t0 = time.perf_counter()
        hl.connect_peer(("127.0.0.1", sess.port))
        await wait(lambda: hl.status().is_seeding)
        return size / (time.perf_counter() - t0) / 1e6
    finally:
        await sess.close()


async def ours_to_lt_process(data: bytes, src: Path, work: Path, size: int) -> float:
    """Our seeder in its own process (`hivecast torrent seed`), as libtorrent has its own threads."""
    import sys

    torrent = work / "t.torrent"
    torrent.write_bytes(data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", "torrent", "seed", str(torrent), "-d", str(src), "--host", "127.0.0.1",
        "--port", str(port), stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(120):
            while b"seeding" not in await proc.stderr.readline():
                pass
        leech = lt_session()
        hl = lt_add(leech, data, work / "ours2lt")
        t0 = time.perf_counter()
        hl.connect_peer(("127.0.0.1", port))
        await wait(lambda: hl.status().is_seeding)
        return size / (time.perf_counter() - t0) / 1e6
    finally:
        proc.terminate()
        await proc.wait()


async def lt_to_ours(data: bytes, src: Path, work: Path, size: int) -> float:
    seed = lt_session()
    hs = lt_add(seed, data, src)
    await wait(lambda: hs.status().is_seeding)
    sess = Session(SessionOptions())
    await sess.start()
    try:
        t0 = time.perf_counter()
        t = await sess.add(Torrent.from_metainfo(parse_torrent(data), work / "lt2ours",
                                                 peers=[("127.0.0.1", seed.listen_port())]))
        await asyncio.wait_for(t.completed.wait(), 600)
        return size / (time.perf_counter() - t0) / 1e6
    finally:
        await sess.close()


class _AnnounceClient(asyncio.DatagramProtocol):
    """Keeps `window` announces in flight: each reply sends the next one."""

    def __init__(self, count: int, window: int) -> None:
        self.count = count
        self.window = window
        self.sent = 0
        self.done = 0
        self.cid: int | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.finished = asyncio.get_running_loop().create_future()
        self.hashes = [os.urandom(20) for _ in range(50)]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDPTransport is not a subclass
        transport.sendto(connect_request(1))

    def _send(self) -> None:
        assert self.transport is not None and self.cid is not None
        n = self.sent
        self.transport.sendto(announce_request(
            self.cid, n, info_hash=self.hashes[n % 50], peer_id=n.to_bytes(20, "big"), port=1 + n % 60000,
            left=n % 2))
        self.sent += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.cid is None:
            self.cid = struct.unpack_from(">Q", data, 8)[0]
            self.t0 = time.perf_counter()
            for _ in range(self.window):
                self._send()
            return
        self.done += 1
        if self.done >= self.count:
            if not self.finished.done():
                self.finished.set_result(time.perf_counter() - self.t0)
        elif self.sent < self.count:
            self._send()


async def udp_announces(count: int) -> float:
    tracker = UdpTracker(TrackerCore(TrackerLimits()), "127.0.0.1", 0)
    await tracker.start()
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: _AnnounceClient(count, 64), remote_addr=("127.0.0.1", tracker.port))
    try:
        # A lost datagram (full buffer) leaves the window one short; the deadline bounds the run.
        elapsed = await asyncio.wait_for(client.finished, 120)
        return count / elapsed
    finally:
        transport.close()
        tracker.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--piece-kb", type=int, default=1024)
    ap.add_argument("--announces", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each transfer (median reported)")
    ap.add_argument("--process", action="store_true", help="run our seeder in its own process")
    ap.add_argument("--only", choices=["lt", "upload", "download", "udp"], action="append")
    args = ap.parse_args()
    size = args.size_mb * 1024 * 1024
    root = Path(tempfile.mkdtemp(prefix="bt_bench_"))
    try:
        src = root / "src"
        (src / "video").mkdir(parents=True)
        with open(src / "video" / "movie.mp4", "wb") as f:
            chunk = os.urandom(1 << 20)
            for i in range(args.size_mb):
                f.write(chunk[i % 7 :] + chunk[: i % 7])
        t0 = time.perf_counter()
        data = await create_torrent(src / "video", piece_length=args.piece_kb * 1024)
        print(f"torrent: {args.size_mb} MB, {args.piece_kb} KiB pieces; hashed in {time.perf_counter() - t0:.2f} s")
        only = set(args.only or ["lt", "upload", "download", "udp"])
        results: dict[str, list[float]] = {}
        upload = ours_to_lt_process if args.process else ours_to_lt
        # Interleaved repeats: the machine is shared, so each figure is the median of N runs
        # taken alternately rather than N runs in a row.
        for rep in range(args.repeat):
            for name, fn in (("lt", lt_to_lt), ("upload", upload), ("download", lt_to_ours)):
                if name in only:
                    work = root / f"{name}{rep}"
                    work.mkdir()
                    results.setdefault(name, []).append(await fn(data, src, work, size))
                    shutil.rmtree(work, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        runs = {k: " ".join(f"{x:.0f}" for x in v) for k, v in results.items()}
        if "lt" in med:
            print(f"libtorrent -> libtorrent : {med['lt']:8.1f} MB/s median  (runs: {runs['lt']})")
        for key, label, what in (("upload", "hivecast   -> libtorrent", "our seeder's upload"),
                                 ("download", "libtorrent -> hivecast  ", "our client's download")):
            if key in med:
                ratio = f"  ratio {med[key] / med['lt']:.2f}" if "lt" in med else ""
                print(f"{label} : {med[key]:8.1f} MB/s median{ratio}  ({what}; runs: {runs[key]})")
        if "udp" in only:
            print(f"UDP tracker: {await udp_announces(args.announces):,.0f} announces/s (64 in flight, one client)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    install_event_loop_policy()
    asyncio.run(main())
