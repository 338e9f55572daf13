"""TLS for the HTTP front door: a server context from a PEM certificate and key, or a clear
reason why not (missing file, unreadable file, not PEM, key not matching the certificate)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path


class TlsConfigError(Exception):
    """The certificate or key cannot be used: the message names the file and the reason."""


def server_context(cert: Path, key: Path, *, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """TLS 1.2+ with the standard library's server defaults (forward-secret AEAD suites, no
    compression, no renegotiation) and ALPN: we speak HTTP/1.1 only, so a client offering h2
    settles on http/1.1 instead of guessing."""
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise TlsConfigError(f"TLS {what} file {path} does not exist")
        try:
            with path.open("rb") as fh:
                head = fh.read(64 * 1024)
        except OSError as exc:
            raise TlsConfigError(f"TLS {what} file {path} is not readable: {exc.strerror or exc}") from None
        if b"-----BEGIN " not in head:
            raise TlsConfigError(f"TLS {what} file {path} is not PEM")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
        ctx.load_cert_chain(str(cert), str(key), password=_no_password(key))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc).lower():
            raise TlsConfigError(f"TLS key {key} does not match the certificate {cert}") from None
        raise TlsConfigError(f"cannot load TLS certificate {cert} with key {key}: {exc.reason or exc}") from None
    except OSError as exc:
        raise TlsConfigError(f"cannot load TLS certificate {cert} with key {key}: {exc.strerror or exc}") from None
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def _no_password(key: Path) -> Callable[[], bytes]:
    def ask() -> bytes:
        raise TlsConfigError(f"TLS key {key} is encrypted; give an unencrypted PEM key")

    return ask
