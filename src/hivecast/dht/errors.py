"""DHT errors, named for who did wrong."""

from __future__ import annotations


class DhtError(Exception):
    """Base of every hivecast.dht error."""


class KrpcError(DhtError, ValueError):
    """A datagram that is not a valid KRPC message (the remote did wrong); it is dropped."""


class LookupFailed(DhtError):
    """A lookup ended without reaching any node."""
