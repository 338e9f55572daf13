"""The network layer under every protocol: asyncio TCP/UDP with limits, timeouts and typed errors."""

from hivecast.net.errors import (
    AddressInUse,
    BufferLimitExceeded,
    ConnectionLimitExceeded,
    ConnectionRefused,
    ConnectionReset,
    NameResolutionError,
    NetError,
    NetTimeout,
    translate_os_error,
)
from hivecast.net.limits import ConnectionLimits
from hivecast.net.loop import install_event_loop_policy, run
from hivecast.net.tcp import Connection, TcpServer, connect
from hivecast.net.udp import UdpEndpoint, open_udp

__all__ = [
    "AddressInUse",
    "BufferLimitExceeded",
    "Connection",
    "ConnectionLimitExceeded",
    "ConnectionLimits",
    "ConnectionRefused",
    "ConnectionReset",
    "NameResolutionError",
    "NetError",
    "NetTimeout",
    "TcpServer",
    "UdpEndpoint",
    "connect",
    "install_event_loop_policy",
    "open_udp",
    "run",
    "translate_os_error",
]
