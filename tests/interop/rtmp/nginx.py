"""nginx with Debian's RTMP module on a loopback port, or a skip that says why."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(workdir: Path, worker_connections: int = 4096) -> tuple[str, int, Path]:
    """(nginx executable, port, config file) for an nginx-rtmp in `workdir`, or a skip."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if exe is None or not MODULE.exists():
        pytest.skip("nginx with libnginx-mod-rtmp is not installed (scripts/provision.sh installs it)")
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"load_module {MODULE};\nworker_processes 1;\ndaemon off;\npid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/error.log warn;\nevents {{ worker_connections {worker_connections}; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        f"  application live {{ live on; record off; }} }} }}\n")
    return exe, port, conf


@contextlib.asynccontextmanager
async def nginx_rtmp(workdir: Path, *, worker_connections: int = 4096) -> AsyncIterator[int]:
    exe, port, conf = prepare(workdir, worker_connections)
    proc = await asyncio.create_subprocess_exec(exe, "-c", str(conf), "-p", str(workdir),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                    break
                except OSError:
                    if proc.returncode is not None:
                        pytest.skip(f"nginx did not start (see {workdir}/error.log)")
                    await asyncio.sleep(0.1)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
