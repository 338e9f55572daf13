"""`hivecast sim overlays`: every P2P overlay on one workload, with a progress bar, a CSV of every
lookup, a summary table and PNG plots."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("sim", help="simulations on a virtual clock and network")
    sub = p.add_subparsers(dest="sim_command", required=True)
    o = sub.add_parser("overlays", help="flooding, super-peers, central index, Chord, CAN, Pastry, Kademlia side by side")
    o.add_argument("--nodes", type=int, default=1000, help="N, nodes in every overlay (default 1000)")
    o.add_argument("--lookups", type=int, default=10000, help="lookups per design (default 10000)")
    o.add_argument("--churn", type=float, default=0.0,
                   help="fraction of nodes replaced per hour of virtual time, e.g. 0.2 (default 0)")
    o.add_argument("--seed", type=int, default=1)
    o.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    o.add_argument("--dims", type=_ints, default=(2, 3, 4), help="CAN dimensions, e.g. 2,3,4")
    o.add_argument("--b", type=int, default=4, help="Pastry digit bits (base 2^b), 1..8 (default 4)")
    o.add_argument("--degree", type=int, default=6, help="mean degree of the flooding graphs (default 6)")
    o.add_argument("--catalogue", type=int, default=1000, help="items in the Zipf catalogue (default 1000)")
    o.add_argument("--designs", default=",".join(_all()), help="comma-separated subset of designs")
    o.add_argument("--flood-lookups", type=int, default=None,
                   help="optional cap on flooding/expanding-ring lookups (default: --lookups)")
    o.add_argument("--dht-lookups", type=int, default=None,
                   help="optional cap on Chord/Kademlia lookups (default: --lookups)")
    o.add_argument("--kademlia-join", choices=("converged", "protocol"), default="converged",
                   help="Kademlia's start: routing tables as the join protocol converges to them (default), "
                        "or every node joining one by one through find_node lookups (slow at 10,000)")
    o.add_argument("--churn-levels", type=_floats, default=(),
                   help="churn levels to run (default: 0 and --churn), for the success-against-churn plot")
    o.add_argument("--no-plots", action="store_true")
    o.set_defaults(func=_overlays)


def _all() -> tuple[str, ...]:
    from hivecast.sim.overlays.run import ALL_DESIGNS

    return ALL_DESIGNS


def _overlays(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hivecast.sim.overlays.run import RunConfig, plan, run_all
    from hivecast.sim.overlays.workload import OverlayParamError, Workload

    cfg = RunConfig(
        Workload(nodes=args.nodes, lookups=args.lookups, churn=args.churn, seed=args.seed, catalogue=args.catalogue),
        dims=args.dims, b=args.b, degree=args.degree,
        designs=tuple(d.strip() for d in args.designs.split(",") if d.strip()),
        flood_lookups=args.flood_lookups, dht_lookups=args.dht_lookups, churn_levels=args.churn_levels,
        kademlia_join=args.kademlia_join)
    try:
        cfg.validate()  # one clear error before anything runs
    except OverlayParamError as exc:
        print(f"hivecast sim overlays: error: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    steps = plan(cfg)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        overall = progress.add_task("all designs", total=sum(c for _, _, c in steps))

        def on_start(design: str, level: float, count: int) -> Callable[[int], None]:
            task = progress.add_task(f"{design} (churn {level:g}/h)", total=count)

            def advance(n: int) -> None:
                progress.advance(task, n)
                progress.advance(overall, n)
            return advance

        _, text = run_all(cfg, args.out, on_start=on_start, plots=not args.no_plots)
    print(text)
    print(f"wrote {args.out / 'lookups.csv'}, {args.out / 'summary.csv'}, {args.out / 'summary.md'}"
          + ("" if args.no_plots else " and PNG plots"))
    return 0
