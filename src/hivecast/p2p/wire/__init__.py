"""The peer wire protocol (BEP 3) with the fast extension (BEP 6) and extension protocol (BEP 10)."""

from hivecast.p2p.wire.messages import *  # noqa: F403
from hivecast.p2p.wire.protocol import PeerWire, WireLimits

__all__ = ["PeerWire", "WireLimits"]
