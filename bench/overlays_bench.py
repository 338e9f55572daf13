"""Simulated lookups per second for each overlay at N = 10,000, and peak memory.

Each design runs in its own child process so that its peak resident memory (ru_maxrss) is its own.
Build time (making the N-node overlay, and for Kademlia the first announces) is reported apart from
the lookup rate (lookups finished per second of wall time after the first one); "per CPU s" is the
lookups over the design's CPU seconds, build included, which a loaded machine disturbs less.

    .venv/bin/python bench/overlays_bench.py --nodes 10000 --lookups 100000
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


def one(design: str, nodes: int, lookups: int, flood: int | None, dht: int | None, seed: int,
        churn: float) -> dict[str, object]:
    cfg = RunConfig(Workload(nodes=nodes, lookups=lookups, seed=seed, churn=churn), flood_lookups=flood,
                    dht_lookups=dht)
    count = next(c for d, _, c in plan(cfg) if d == design)
    stamps: list[float] = []
    started = time.perf_counter()
    cpu = time.process_time()
    result = run_one(replace(cfg), design, churn, count, lambda _n: stamps.append(time.perf_counter()))
    total = time.perf_counter() - started
    cpu_total = time.process_time() - cpu
    # The first progress call marks the end of the build (Kademlia's includes the first announces).
    first = stamps[0] if stamps else started + total
    per_lookup_span = (stamps[-1] - stamps[0]) if len(stamps) > 1 else total
    done = len(stamps) - 1 if len(stamps) > 1 else count
    rate = done / per_lookup_span if per_lookup_span > 0 else float("nan")
    return {"design": design, "nodes": nodes, "lookups": count, "build_s": round(first - started, 2),
            "total_s": round(total, 2), "cpu_s": round(cpu_total, 2), "lookups_per_s": round(rate, 1),
            "lookups_per_cpu_s": round(count / cpu_total, 1) if cpu_total > 0 else float("nan"),
            "success": sum(r.success for r in result.records) / len(result.records),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--lookups", type=int, default=100_000)
    p.add_argument("--flood-lookups", type=int, default=None, help="optional cap (default: --lookups)")
    p.add_argument("--dht-lookups", type=int, default=None, help="optional cap (default: --lookups)")
    p.add_argument("--churn", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--designs", default="")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.nodes, args.lookups, args.flood_lookups, args.dht_lookups, args.seed,
                             args.churn)))
        return 0
    cfg = RunConfig(Workload(nodes=args.nodes, lookups=args.lookups, seed=args.seed, churn=args.churn))
    designs = [d for d, _, _ in plan(cfg)]
    if args.designs:
        wanted = args.designs.split(",")
        designs = [d for d in designs if any(d.startswith(w) for w in wanted)]
    caps = []
    for flag, value in (("--flood-lookups", args.flood_lookups), ("--dht-lookups", args.dht_lookups)):
        if value is not None:
            caps += [flag, str(value)]
    print(f"N = {args.nodes:,}; lookups {args.lookups:,}; churn {args.churn:g}/h; caps {' '.join(caps) or 'none'}")
    print(f"{'design':16} {'lookups':>8} {'build s':>8} {'total s':>8} {'CPU s':>8} {'lookups/s':>10} "
          f"{'per CPU s':>10} {'success':>8} {'peak MB':>8}")
    for design in designs:
        out = subprocess.run([sys.executable, __file__, "--one", design, "--nodes", str(args.nodes), "--lookups",
                              str(args.lookups), "--churn", str(args.churn), "--seed", str(args.seed), *caps],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{design:16} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{design:16} {r['lookups']:>8,} {r['build_s']:>8} {r['total_s']:>8} {r['cpu_s']:>8} "
              f"{r['lookups_per_s']:>10,} {r['lookups_per_cpu_s']:>10,} {r['success']:>8.3f} {r['peak_rss_mb']:>8}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
