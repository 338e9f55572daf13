"""Simulated Kademlia (BEP 5 core) and Chord at scale: success, hops against log2 N, churn.

Runs the same node cores as the real servers on a virtual clock and network (hivecast.sim), writes
one CSV per run, a summary JSON and PNG hop histograms.

    .venv/bin/python bench/dht_sim.py --nodes 10000 --lookups 2000 --out bench/out/dht_sim
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

from hivecast.sim.chord import ChordSim
from hivecast.sim.kademlia import KademliaSim
from hivecast.sim.workload import LookupRecord, gini, summarize, write_csv


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def plot(path: Path, title: str, runs: dict[str, list[LookupRecord]], marks: dict[str, float]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -e .[bench]): no PNG")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(runs))
    for i, (label, records) in enumerate(runs.items()):
        hops = Counter(r.hops for r in records if r.success)
        total = sum(hops.values()) or 1
        xs = sorted(hops)
        ax.bar([x + i * width for x in xs], [hops[x] / total for x in xs], width=width, label=label)
    for label, value in marks.items():
        ax.axvline(value, linestyle="--", color="k" if "log2" in label else "r", label=f"{label} = {value:.2f}")
    ax.set_xlabel("hops")
    ax.set_ylabel("fraction of successful lookups")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--lookups", type=int, default=2_000)
    ap.add_argument("--keys", type=int, default=200, help="info-hashes announced before the lookups")
    ap.add_argument("--churn", type=float, default=0.2, help="fraction of nodes replaced (killed without notice)")
    ap.add_argument("--chord-churn-nodes", type=int, default=1_000,
                    help="ring size for the Chord churn run (stabilization timers on every node are costly)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/out/dht_sim"))
    ap.add_argument("--skip-kademlia", action="store_true")
    args = ap.parse_args()
    if not 0 <= args.churn < 1 or args.nodes < 2 or args.lookups < 1:
        ap.error("need nodes >= 2, lookups >= 1, 0 <= churn < 1")
    args.out.mkdir(parents=True, exist_ok=True)
    n = args.nodes
    summary: dict[str, dict[str, float]] = {}

    if not args.skip_kademlia:
        started = time.monotonic()
        kad = KademliaSim(seed=args.seed)
        log(f"kademlia: joining {n} nodes")
        kad.build(n)
        log(f"kademlia: built in {time.monotonic() - started:.0f} s; announcing {args.keys} keys")
        kad.announce(args.keys)
        calm = kad.lookups(args.lookups)
        write_csv(calm, args.out / "kademlia.csv")
        summary["kademlia"] = summarize(calm)
        tables = [len(h.node.table) for h in kad.hosts.values()]
        summary["kademlia"]["mean_routing_table"] = sum(tables) / len(tables)
        summary["kademlia"]["load_gini"] = gini([kad.net.received_by[a] for a in kad.hosts])
        log(f"kademlia calm: {summary['kademlia']}")
        kad.churn(args.churn)
        churned = kad.lookups(args.lookups, churn=args.churn, start_index=args.lookups)
        write_csv(churned, args.out / "kademlia_churn.csv")
        summary["kademlia_churn"] = summarize(churned)
        log(f"kademlia churn {args.churn:.0%}: {summary['kademlia_churn']}")
        plot(args.out / "kademlia_hops.png", f"Kademlia (k=8, alpha=3), N={n}",
             {"no churn": calm, f"{args.churn:.0%} churn": churned}, {"log2 N": math.log2(n)})

    log(f"chord: ring of {n}")
    chord = ChordSim(seed=args.seed)
    chord.build(n)
    ring = chord.lookups(args.lookups)
    write_csv(ring, args.out / "chord.csv")
    summary["chord"] = summarize(ring)
    summary["chord"]["half_log2_n"] = 0.5 * math.log2(n)
    log(f"chord: {summary['chord']}")
    m = args.chord_churn_nodes
    small = ChordSim(seed=args.seed)
    small.build(m)
    small.churn(args.churn)
    churned_ring = small.lookups(args.lookups, churn=args.churn)
    write_csv(churned_ring, args.out / "chord_churn.csv")
    summary["chord_churn"] = summarize(churned_ring)
    log(f"chord churn {args.churn:.0%} at N={m}: {summary['chord_churn']}")
    plot(args.out / "chord_hops.png", f"Chord, N={n}", {"no churn": ring},
         {"1/2 log2 N": 0.5 * math.log2(n), "mean": summary["chord"]["mean_hops"]})
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
