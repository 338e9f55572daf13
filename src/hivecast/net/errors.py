"""Typed network errors.

Socket failures surface from asyncio as a zoo of OSError subclasses, socket.gaierror and
TimeoutError. Every caller in Hivecast wants to know one of a few things (the peer is not there,
the peer went away, it took too long, the name does not resolve, we are over a limit), so we map
them once, here, and keep the address in the message.
"""

from __future__ import annotations

import errno
import socket

Address = tuple[str, int] | str | None


def _describe(address: Address) -> str:
    if address is None:
        return ""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f" {host}:{port}" if ":" not in host else f" [{host}]:{port}"
    return f" {address}"


class NetError(Exception):
    """A network operation failed; the message names the address and what happened."""

    def __init__(self, message: str, *, address: Address = None) -> None:
        super().__init__(f"{message}{_describe(address)}" if address is not None else message)
        self.address = address


class ConnectionRefused(NetError):
    """Nobody listens at the address."""


class ConnectionReset(NetError):
    """The peer closed or reset the connection while we were using it."""


class NetTimeout(NetError):
    """A connect, read, write or idle deadline passed."""


class NameResolutionError(NetError):
    """The host name does not resolve."""


class AddressInUse(NetError):
    """We could not bind: another process holds the address."""


class AddressNotAvailable(NetError):
    """We could not bind: the address is not one of this machine's, or permission is denied."""


class ConnectionLimitExceeded(NetError):
    """A server is at its connection limit and turned a new connection away."""


class BufferLimitExceeded(NetError):
    """A peer sent more than we buffer, or read too slowly for what we must send it."""


_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN, errno.ENOTCONN}


def translate_os_error(exc: BaseException, address: Address = None, *, action: str = "") -> NetError:
    """Map an exception raised by a socket operation to one of our typed errors."""
    what = f"{action}: " if action else ""
    if isinstance(exc, NetError):
        return exc
    if isinstance(exc, socket.gaierror):
        return NameResolutionError(f"{what}cannot resolve host name ({exc.strerror})", address=address)
    if isinstance(exc, TimeoutError):
        return NetTimeout(f"{what}timed out", address=address)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"{what}connection refused", address=address)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectionReset(f"{what}connection reset by peer", address=address)
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return AddressInUse(f"{what}address already in use", address=address)
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM):
            return AddressNotAvailable(f"{what}{exc.strerror or 'cannot bind'}", address=address)
        if exc.errno in _RESET_ERRNOS:
            return ConnectionReset(f"{what}connection reset by peer", address=address)
        if exc.errno == errno.ECONNREFUSED:
            return ConnectionRefused(f"{what}connection refused", address=address)
        if exc.errno in (errno.ETIMEDOUT,):
            return NetTimeout(f"{what}timed out", address=address)
        return NetError(f"{what}{exc.strerror or exc}", address=address)
    return NetError(f"{what}{exc}", address=address)
