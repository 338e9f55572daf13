"""A node in its own process for tests that must kill it or drive it from another tool:
`python tests/e2e/_api_node.py DATA_DIR PORT [DATABASE_URL]` (admin/adminpass1, generous limits)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from hivecast.config import load_settings
from hivecast.node.roles import build_node


async def main() -> None:
    flags: dict[str, object] = {
        "role": "serve", "host": "127.0.0.1", "http_port": int(sys.argv[2]), "rtsp_port": 0,
        "data_dir": Path(sys.argv[1]), "log_level": "warning",
        "api": {"admin_username": "admin", "admin_password": "adminpass1", "rate_limit": 1_000_000,
                "rate_limit_ip": 1_000_000, "rate_limit_login": 1_000_000, "upload_chunk_bytes": 4 * 1024 * 1024},
    }
    if len(sys.argv) > 3:
        flags["database_url"] = sys.argv[3]
    node = build_node(load_settings(flags=flags, environ={}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    print("ready", flush=True)
    await stop.wait()
    await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
