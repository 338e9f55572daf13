"""One error hierarchy for the P2P package, named for who did wrong."""

from __future__ import annotations


class P2PError(Exception):
    """Base of every error raised by hivecast.p2p."""


class BencodeError(P2PError, ValueError):
    """Bytes that are not strict, canonical bencode (or a value that cannot be encoded)."""


class MetainfoError(P2PError, ValueError):
    """A torrent file or info dictionary that breaks BEP 3 / BEP 52 rules."""


class MagnetError(P2PError, ValueError):
    """A magnet link we cannot use."""


class PeerProtocolError(P2PError):
    """The remote peer broke the wire protocol; the connection is dropped and the peer may be banned."""


class TrackerError(P2PError):
    """A tracker request or response we reject; the message is the bencoded failure reason."""


class StorageError(P2PError):
    """Reading or writing the torrent's files failed."""
