"""Lookup latency on a loopback DHT of N nodes: our nodes versus libtorrent's nodes.

Two networks of N nodes on 127.0.0.1, built one after the other: N of our DhtServer nodes (one
asyncio process), then N libtorrent sessions with only the DHT doing work. In each, K info-hashes
are announced by random members, then one client of ours (bootstrapped through the first member)
runs M get_peers lookups for them. Reported: success, median and p90 time to complete a lookup and
time until the announced peer was known, and the ratio ours/libtorrent. Same client code both times,
so the difference is how the nodes answer and route.

    .venv/bin/python bench/dht_lookup.py --nodes 200 --lookups 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import time
from multiprocessing.connection import Connection

from hivecast.dht.ids import random_id
from hivecast.dht.server import DhtServer


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(client: DhtServer, keys: dict[bytes, tuple[str, int]], lookups: int,
                  rng: random.Random) -> dict[str, float]:
    totals, ok, queries = [], 0, 0
    for _ in range(lookups):
        key = rng.choice(list(keys))
        started = time.perf_counter()
        lookup = await client.get_peers(key, timeout=20)
        totals.append(time.perf_counter() - started)
        ok += keys[key] in lookup.peers
        queries += lookup.stats.queries
    return {"lookups": lookups, "success": ok / lookups, "median_ms": 1000 * statistics.median(totals),
            "p90_ms": 1000 * pct(totals, 0.9), "queries_per_lookup": queries / lookups}


async def _our_network(n: int, k: int, seed: int, conn: Connection) -> None:
    rng = random.Random(seed)
    nodes = [DhtServer()]
    await nodes[0].start()
    hub = ("127.0.0.1", nodes[0].port)
    for i in range(1, n):
        node = DhtServer(bootstrap=[hub] if i < 8 else [("127.0.0.1", rng.choice(nodes[:i]).port)])
        await node.start()
        nodes.append(node)
        await node.wait_bootstrapped(timeout=10)
    keys: dict[bytes, tuple[str, int]] = {}
    for j in range(k):
        key = random_id(rng)
        port = 20000 + j
        await rng.choice(nodes).get_peers(key, announce_port=port)
        keys[key] = ("127.0.0.1", port)
    conn.send((hub, keys))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # until the parent is done measuring
    for node in nodes:
        await node.stop()


def _our_network_process(n: int, k: int, seed: int, conn: Connection) -> None:
    asyncio.run(_our_network(n, k, seed, conn))


async def ours(n: int, k: int, m: int, seed: int) -> dict[str, float]:
    """Our N nodes run in a child process (one asyncio loop), like libtorrent's run outside the client."""
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_our_network_process, args=(n, k, seed, child), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    hub, keys = await loop.run_in_executor(None, parent.recv)
    log(f"ours: {n} nodes up, {k} keys announced")
    rng = random.Random(seed + 1)
    client = DhtServer(bootstrap=[hub])
    await client.start()
    await client.wait_bootstrapped(timeout=10)
    await client.find_node(random_id(rng))
    log(f"client routing table: {len(client.node.table)} nodes")
    figures = await measure(client, keys, m, rng)
    await client.stop()
    parent.send("stop")
    proc.join(timeout=30)
    return figures


async def libtorrent_nodes(n: int, k: int, m: int, seed: int) -> dict[str, float]:
    import libtorrent as lt

    rng = random.Random(seed)
    base = {
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False, "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False, "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False, "alert_mask": 0, "aio_threads": 1, "hashing_threads": 1,
        # Every node shares 127.0.0.1: lift the per-IP abuse block and the DHT upload cap.
        "dht_block_ratelimit": 1_000_000, "dht_upload_rate_limit": 100_000_000,
    }
    sessions = [lt.session({**base, "listen_interfaces": "127.0.0.1:0", "dht_bootstrap_nodes": ""})]
    await asyncio.sleep(0.5)
    hub = f"127.0.0.1:{sessions[0].listen_port()}"
    for i in range(1, n):
        sessions.append(lt.session({**base, "listen_interfaces": "127.0.0.1:0", "dht_bootstrap_nodes": hub}))
        if i % 20 == 0:
            await asyncio.sleep(1.0)
    await asyncio.sleep(15)
    log(f"libtorrent: {n} sessions up")
    rng = random.Random(seed)
    keys: dict[bytes, tuple[str, int]] = {}
    for j in range(k):
        key = random_id(rng)
        port = 30000 + j
        rng.choice(sessions).dht_announce(lt.sha1_hash(key), port, 0)
        keys[key] = ("127.0.0.1", port)
    await asyncio.sleep(15)  # libtorrent's announce is a lookup then announce_peer: let them land
    client = DhtServer(bootstrap=[("127.0.0.1", sessions[0].listen_port())])
    await client.start()
    await client.wait_bootstrapped(timeout=10)
    await client.find_node(random_id(rng))
    log(f"client routing table: {len(client.node.table)} libtorrent nodes")
    figures = await measure(client, keys, m, random.Random(seed + 1))
    await client.stop()
    sessions.clear()
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--lookups", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    result = {"ours": asyncio.run(ours(args.nodes, args.keys, args.lookups, args.seed))}
    log(f"ours: {result['ours']}")
    result["libtorrent"] = asyncio.run(libtorrent_nodes(args.nodes, args.keys, args.lookups, args.seed))
    log(f"libtorrent: {result['libtorrent']}")
    ratio = result["ours"]["median_ms"] / result["libtorrent"]["median_ms"]
    print(json.dumps(result, indent=2))
    print(f"median lookup latency ours/libtorrent = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
