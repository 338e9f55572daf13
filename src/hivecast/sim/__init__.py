"""A discrete-event simulator shared by the overlays: virtual clock, virtual network with latency
and loss, churn, seeded random streams and a workload runner. Protocol cores run unchanged on it."""

from hivecast.sim.clock import VirtualClock
from hivecast.sim.network import LatencyModel, VirtualNetwork
from hivecast.sim.rng import derive_rng
from hivecast.sim.workload import LookupRecord, summarize, write_csv

__all__ = ["LatencyModel", "LookupRecord", "VirtualClock", "VirtualNetwork", "derive_rng", "summarize", "write_csv"]
