"""Simulated lookups per second for each overlay at N = 10,000, and peak memory.

Each design runs in its own child process so that its peak resident memory (ru_maxrss) is its own.
Build time (making the N-node overlay) is reported apart from lookup time.

    .venv/bin/python bench/overlays_bench.py --nodes 10000 --lookups 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

from hivecast.sim.overlays.run import RunConfig, plan, run_one
from hivecast.sim.overlays.workload import Workload


def one(design: str, nodes: int, lookups: int, flood: int, dht: int, seed: int) -> dict[str, object]:
    cfg = RunConfig(Workload(nodes=nodes, lookups=lookups, seed=seed), flood_lookups=flood, dht_lookups=dht)
    count = next(c for d, _, c in plan(cfg) if d == design)
    if design in ("chord", "kademlia"):
        return _dht(design, nodes, count, seed)
    stamps: list[float] = []
    started = time.perf_counter()
    result = run_one(replace(cfg), design, 0.0, count, lambda _n: stamps.append(time.perf_counter()))
    total = time.perf_counter() - started
    # The first progress call marks the end of the build.
    first = stamps[0] if stamps else started + total
    per_lookup_span = (stamps[-1] - stamps[0]) if len(stamps) > 1 else total
    done = len(stamps) - 1 if len(stamps) > 1 else count
    rate = done / per_lookup_span if per_lookup_span > 0 else float("nan")
    return {"design": design, "nodes": nodes, "lookups": count, "build_s": round(first - started, 2),
            "total_s": round(total, 2), "lookups_per_s": round(rate, 1),
            "success": sum(r.success for r in result.records) / len(result.records),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _dht(design: str, nodes: int, count: int, seed: int) -> dict[str, object]:
    from hivecast.sim.chord import ChordSim
    from hivecast.sim.kademlia import KademliaSim

    started = time.perf_counter()
    sim: ChordSim | KademliaSim
    if design == "chord":
        sim = ChordSim(seed=seed)
        sim.build(nodes)
    else:
        sim = KademliaSim(seed=seed)
        sim.build(nodes)
        sim.announce(200)
    built = time.perf_counter()
    records = sim.lookups(count)
    done = time.perf_counter()
    return {"design": design, "nodes": nodes, "lookups": count, "build_s": round(built - started, 2),
            "total_s": round(done - started, 2), "lookups_per_s": round(count / (done - built), 1),
            "success": sum(r.success for r in records) / len(records),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--lookups", type=int, default=20_000)
    p.add_argument("--flood-lookups", type=int, default=500)
    p.add_argument("--dht-lookups", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--designs", default="")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.nodes, args.lookups, args.flood_lookups, args.dht_lookups, args.seed)))
        return 0
    cfg = RunConfig(Workload(nodes=args.nodes, lookups=args.lookups, seed=args.seed))
    designs = [d for d, _, _ in plan(cfg)]
    if args.designs:
        wanted = args.designs.split(",")
        designs = [d for d in designs if any(d.startswith(w) for w in wanted)]
    print(f"N = {args.nodes:,}; lookups {args.lookups:,} (flooding {args.flood_lookups:,}, DHT sims {args.dht_lookups:,})")
    print(f"{'design':16} {'lookups':>8} {'build s':>8} {'lookups/s':>10} {'success':>8} {'peak MB':>8}")
    for design in designs:
        out = subprocess.run([sys.executable, __file__, "--one", design, "--nodes", str(args.nodes), "--lookups",
                              str(args.lookups), "--flood-lookups", str(args.flood_lookups), "--dht-lookups",
                              str(args.dht_lookups), "--seed", str(args.seed)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{design:16} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{design:16} {r['lookups']:>8,} {r['build_s']:>8} {r['lookups_per_s']:>10,} {r['success']:>8.3f} "
              f"{r['peak_rss_mb']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
