"""The tracker: swarm bookkeeping (core), HTTP (BEP 3/23/48/7) and UDP (BEP 15) wire forms, adapters."""

from hivecast.p2p.tracker.core import AnnounceRequest, AnnounceResult, TrackerCore, TrackerLimits

__all__ = ["AnnounceRequest", "AnnounceResult", "TrackerCore", "TrackerLimits"]
