"""Runs every overlay on one workload and writes what an operator compares: a CSV of every lookup,
a summary table (CSV and Markdown) with each design's measured figures beside its paper's
prediction, and PNG plots.

Every design runs the same workload (`overlays.workload`); Chord and Kademlia are the DHT issue's
simulations (the real node cores, message by message) driven by it through `overlays.dht`.
`flood_lookups` and `dht_lookups` optionally cap those designs' lookup counts (off by default).
"""

from __future__ import annotations

import csv
import gc
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from hivecast.sim.overlays.base import Overlay
from hivecast.sim.overlays.can import Can
from hivecast.sim.overlays.dht import ChordOverlay, KademliaOverlay
from hivecast.sim.overlays.flooding import ExpandingRing, Flooding
from hivecast.sim.overlays.hybrid import CentralIndex, SuperPeer
from hivecast.sim.overlays.pastry import Pastry
from hivecast.sim.overlays.workload import OverlayParamError, Workload, lorenz
from hivecast.sim.workload import LookupRecord, gini, write_csv

ALL_DESIGNS = ("flooding", "expanding-ring", "super-peer", "central", "chord", "can", "pastry", "kademlia")


@dataclass(slots=True)
class RunConfig:
    workload: Workload
    dims: tuple[int, ...] = (2, 3, 4)
    b: int = 4
    degree: int = 6
    designs: tuple[str, ...] = ALL_DESIGNS
    flood_lookups: int | None = None  # optional caps (None: every design runs the workload's count)
    dht_lookups: int | None = None
    kademlia_join: str = "converged"
    churn_levels: tuple[float, ...] = ()

    def validate(self) -> None:
        self.workload.validate()
        bad_d = [d for d in self.dims if d < 1 or d > 8]
        if bad_d:
            raise OverlayParamError(f"CAN dimensions must be in 1..8 (got {bad_d[0]})")
        if not 1 <= self.b <= 8:
            raise OverlayParamError(f"Pastry's b must be in 1..8 (got {self.b})")
        if self.degree < 2:
            raise OverlayParamError(f"--degree must be at least 2 (got {self.degree})")
        unknown = [d for d in self.designs if d not in ALL_DESIGNS]
        if unknown:
            raise OverlayParamError(f"unknown design {unknown[0]!r}; choose from {', '.join(ALL_DESIGNS)}")
        if (self.flood_lookups is not None and self.flood_lookups < 1) or (
                self.dht_lookups is not None and self.dht_lookups < 1):
            raise OverlayParamError("--flood-lookups and --dht-lookups must be at least 1")
        if self.kademlia_join not in ("converged", "protocol"):
            raise OverlayParamError(f"--kademlia-join is 'converged' or 'protocol' (got {self.kademlia_join!r})")
        for level in self.levels():
            if not 0.0 <= level <= 10.0:
                raise OverlayParamError(f"churn levels are fractions per hour in [0, 10] (got {level})")

    def levels(self) -> tuple[float, ...]:
        return self.churn_levels or tuple(sorted({0.0, self.workload.churn}))


@dataclass(slots=True)
class DesignResult:
    design: str
    churn: float
    records: list[LookupRecord]
    load: list[int]
    state: list[int]
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def prediction(design: str, nodes: int) -> tuple[str, float | None]:
    if design == "chord":
        return "½·log2 N (mean)", 0.5 * math.log2(nodes)
    if design.startswith("can-d"):
        d = int(design[5:])
        return f"({d}/4)·N^(1/{d}) (mean)", d / 4 * nodes ** (1 / d)
    if design.startswith("pastry-b"):
        b = int(design[8:])
        return f"⌈log_{2 ** b} N⌉ (bound)", float(math.ceil(math.log(nodes, 2 ** b) - 1e-9))
    if design == "kademlia":
        return "log2 N (k = 8, alpha = 3)", math.log2(nodes)
    if design == "central":
        return "1 hop", 1.0
    return "", None


def _overlay_result(sim: Overlay, churn: float, records: list[LookupRecord], note: str = "",
                    extra: dict[str, float] | None = None) -> DesignResult:
    loads = sim.loads()
    if isinstance(sim, CentralIndex):
        loads.append(sim.load.get(CentralIndex.SERVER, 0))
    return DesignResult(sim.design, churn, records, loads, sim.state_sizes(), note, extra or {})


def plan(cfg: RunConfig) -> list[tuple[str, float, int]]:
    """(design, churn level, lookups) in run order."""
    out = []
    n = cfg.workload.lookups
    for level in cfg.levels():
        for design in cfg.designs:
            if design in ("flooding", "expanding-ring"):
                out.append((design, level, min(n, cfg.flood_lookups or n)))
            elif design in ("chord", "kademlia"):
                out.append((design, level, min(n, cfg.dht_lookups or n)))
            elif design == "can":
                out += [(f"can-d{d}", level, cfg.workload.lookups) for d in cfg.dims]
            elif design == "pastry":
                out.append((f"pastry-b{cfg.b}", level, cfg.workload.lookups))
            else:
                out.append((design, level, cfg.workload.lookups))
    return out


def run_one(cfg: RunConfig, design: str, level: float, count: int,
            progress: Callable[[int], None]) -> DesignResult:
    w = replace(cfg.workload, churn=level, lookups=count)
    sim: Overlay
    extra: dict[str, float] = {}
    if design == "flooding":
        sim = Flooding(w, degree=cfg.degree)
    elif design == "expanding-ring":
        sim = ExpandingRing(w, degree=cfg.degree)
    elif design == "super-peer":
        sim = SuperPeer(w, degree=cfg.degree)
    elif design == "central":
        sim = CentralIndex(w)
    elif design.startswith("can-d"):
        sim = Can(w, d=int(design[5:]))
    elif design.startswith("pastry-b"):
        sim = Pastry(w, b=int(design[8:]))
    elif design == "chord":
        sim = ChordOverlay(w)
    elif design == "kademlia":
        sim = KademliaOverlay(w, join=cfg.kademlia_join)
    else:  # pragma: no cover - plan() only yields the names above
        raise OverlayParamError(f"unknown design {design}")
    try:
        records = sim.run(progress)
    finally:
        gc.unfreeze()  # the design's objects may go once its figures are taken
    note = ""
    if isinstance(sim, Flooding):
        extra["ttl"] = float(sim.ttl or 0)
        note = f"degree {cfg.degree}, TTL {sim.ttl} (smallest reaching 99 % in a pilot); {count:,} lookups"
    elif isinstance(sim, SuperPeer):
        extra["ttl"] = float(sim.ttl)
        note = f"{len(sim.supers)} super-peers, TTL {sim.ttl} among them"
    elif isinstance(sim, KademliaOverlay):
        note = (f"{cfg.kademlia_join} build; {sim.announces:,} announces (holders, every 15 min); "
                f"{count:,} lookups; {_traffic(sim)}")
    elif isinstance(sim, ChordOverlay):
        note = ("exact fingers at rest" if level == 0 else
                f"stabilize + one finger + predecessor check every {sim.config.stabilize_every:g} s")
        note += f"; {_traffic(sim)}"
    return _overlay_result(sim, level, records, note, extra)


def _traffic(sim: KademliaOverlay | ChordOverlay) -> str:
    """All messages on the simulated network (lookups, announces, pings, refreshes, stabilization),
    per live node and minute of virtual time: the maintenance cost the per-lookup column leaves out."""
    minutes = max(sim.clock.now, 1.0) / 60.0
    return f"all traffic {sim.sim.net.sent / max(1, len(sim.live)) / minutes:.1f} messages per node per minute"


def summary_rows(results: Iterable[DesignResult]) -> list[dict[str, str]]:
    rows = []
    for r in results:
        recs = r.records
        ok = [x for x in recs if x.success]
        hops = sorted(x.hops for x in ok) or [0]
        nodes = recs[0].nodes if recs else 0
        label, value = prediction(r.design, nodes)
        mean_hops = statistics.fmean(hops)
        if value and not r.design.startswith("pastry") and r.design != "kademlia":
            versus = f"{value:.2f} ({(mean_hops - value) / value:+.1%})"
        elif value:
            versus = f"{value:.2f}"
        else:
            versus = "—"
        rows.append({
            "design": r.design,
            "churn_per_hour": f"{r.churn:g}",
            "lookups": str(len(recs)),
            "success": f"{len(ok) / max(1, len(recs)):.4f}",
            "mean_hops": f"{mean_hops:.2f}",
            "p99_hops": str(hops[min(len(hops) - 1, int(0.99 * len(hops)))]),
            "max_hops": str(hops[-1]),
            "prediction": label,
            "predicted": versus,
            "messages_per_lookup": f"{statistics.fmean(x.messages for x in recs):.1f}" if recs else "0",
            "mean_state": f"{statistics.fmean(r.state):.1f}" if r.state else "0",
            "max_state": str(max(r.state) if r.state else 0),
            "load_gini": f"{gini(r.load):.3f}",
            "note": r.note,
        })
    return rows


def write_summary(rows: list[dict[str, str]], out: Path) -> str:
    names = list(rows[0]) if rows else []
    with (out / "summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    cols = ["design", "churn_per_hour", "lookups", "success", "mean_hops", "p99_hops", "max_hops", "prediction",
            "predicted", "messages_per_lookup", "mean_state", "max_state", "load_gini"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(row[c] for c in cols) + " |")
    notes = [f"- {row['design']} (churn {row['churn_per_hour']}): {row['note']}" for row in rows if row["note"]]
    text = "\n".join([*lines, "", *notes]) + "\n"
    (out / "summary.md").write_text(text)
    return text


def plot(results: list[DesignResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    calm = [r for r in results if r.churn == min(x.churn for x in results)]

    fig, ax = plt.subplots(figsize=(9, 5))
    for r in calm:
        hops = [x.hops for x in r.records if x.success]
        if hops:
            top = max(hops)
            counts = [hops.count(h) / len(hops) for h in range(top + 1)]
            ax.plot(range(top + 1), counts, marker="o", markersize=3, label=r.design)
    ax.set_xlabel("hops (successful lookups)")
    ax.set_ylabel("fraction of lookups")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_title("Hop distribution per design")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "hops.png"))

    fig, ax = plt.subplots(figsize=(9, 5))
    names = [r.design for r in calm]
    ax.bar(names, [statistics.fmean(x.messages for x in r.records) for r in calm])
    ax.set_yscale("log")
    ax.set_ylabel("messages per lookup (log)")
    ax.set_title("Messages per lookup")
    ax.tick_params(axis="x", rotation=45)
    written.append(_save(fig, out / "messages.png"))

    fig, ax = plt.subplots(figsize=(9, 5))
    ax.bar(names, [statistics.fmean(r.state) for r in calm], label="mean")
    ax.scatter(names, [max(r.state) for r in calm], color="black", marker="_", s=200, label="max")
    ax.set_yscale("log")
    ax.set_ylabel("routing state per node (entries, log)")
    ax.set_title("Per-node routing state")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    written.append(_save(fig, out / "state.png"))

    fig, ax = plt.subplots(figsize=(9, 5))
    for design in dict.fromkeys(r.design for r in results):
        pts = sorted((r.churn, sum(x.success for x in r.records) / max(1, len(r.records)))
                     for r in results if r.design == design)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=design)
    ax.set_xlabel("churn (fraction of nodes replaced per hour)")
    ax.set_ylabel("success rate")
    ax.set_title("Success against churn")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "success_vs_churn.png"))

    fig, ax = plt.subplots(figsize=(7, 7))
    for r in calm:
        xs, ys = lorenz(r.load)
        ax.plot(xs, ys, label=f"{r.design} (Gini {gini(r.load):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("fraction of nodes (least loaded first)")
    ax.set_ylabel("fraction of queries handled")
    ax.set_title("Load balance (Lorenz curves)")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "load_lorenz.png"))
    return written


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def run_all(cfg: RunConfig, out: Path, *, on_start: Callable[[str, float, int], Callable[[int], None]] | None = None,
            plots: bool = True) -> tuple[list[DesignResult], str]:
    cfg.validate()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for design, level, count in plan(cfg):
        progress = on_start(design, level, count) if on_start else (lambda _n: None)
        results.append(run_one(cfg, design, level, count, progress))
    write_csv((rec for r in results for rec in r.records), out / "lookups.csv")
    text = write_summary(summary_rows(results), out)
    if plots:
        plot(results, out)
    return results, text
