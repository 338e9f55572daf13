"""Helpers to run libtorrent DHT sessions on loopback (settings per ../shared/INTEROP.md, DHT on)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

lt = pytest.importorskip("libtorrent", reason="libtorrent (pip install libtorrent) is not installed")


def lt_session(port: int, bootstrap: str, **extra: Any) -> Any:
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": True,
        "dht_bootstrap_nodes": bootstrap,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Every node here shares 127.0.0.1: allow many nodes per IP and ids not derived from it.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "dht_block_ratelimit": 100_000,  # many nodes share 127.0.0.1: do not block it as abusive
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification,
    }
    settings.update(extra)
    return lt.session(settings)


async def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2) -> Any:
    """Poll until predicate() is truthy; fail the test with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
