"""P2P overlay designs measured side by side on the shared simulator: flooding and expanding ring,
super-peers, a central index, CAN and Pastry (Chord and Kademlia come from `hivecast.sim`)."""

from hivecast.sim.overlays.run import ALL_DESIGNS, RunConfig, run_all
from hivecast.sim.overlays.workload import MAX_LOOKUPS, OverlayParamError, Workload

__all__ = ["ALL_DESIGNS", "MAX_LOOKUPS", "OverlayParamError", "RunConfig", "Workload", "run_all"]
