"""wss://: our client against the `websockets` server over TLS, with a self-signed certificate made
here by the `openssl` CLI: SNI carries the host name, the certificate is checked against it, and an
untrusted or mismatched certificate ends the handshake with an error instead of a connection."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hivecast.ws import HandshakeError, connect
from tests.interop.ws.helpers import assert_echoes

pytestmark = pytest.mark.interop

NAMES = ("localhost", "ws.test")


def self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    san = "subjectAltName=" + ",".join(f"DNS:{n}" for n in NAMES)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", san],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class TlsEcho:
    def __init__(self, port: int, cert: Path, sni_seen: list[str | None]) -> None:
        self.port = port
        self.cert = cert
        self.sni_seen = sni_seen

    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture
async def tls_echo(tmp_path: Path) -> AsyncIterator[TlsEcho]:
    import websockets

    cert, key = self_signed(tmp_path)
    sni_seen: list[str | None] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni_seen.append(name)

    ctx.sni_callback = record_sni  # type: ignore[assignment]

    async def handler(conn: Any) -> None:
        async for msg in conn:
            await conn.send(msg)

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None) as server:
        yield TlsEcho(server.sockets[0].getsockname()[1], cert, sni_seen)


async def test_our_client_over_tls_to_websockets_server(tls_echo: TlsEcho) -> None:
    async with asyncio.timeout(30):
        ws = await connect(f"wss://localhost:{tls_echo.port}/echo", ssl=tls_echo.trusting())
        assert ws.deflate is not None  # permessage-deflate inside TLS
        await assert_echoes(ws)
        await ws.ping()
        await ws.close(1000, "bye")
        assert ws.close_code == 1000
    assert tls_echo.sni_seen == ["localhost"]


async def test_server_hostname_overrides_the_url_host(tls_echo: TlsEcho) -> None:
    """Connect to an address, present and verify another name (a server reached by IP behind SNI)."""
    async with asyncio.timeout(30):
        ws = await connect(f"wss://127.0.0.1:{tls_echo.port}/", ssl=tls_echo.trusting(), server_hostname="ws.test")
        await ws.send("via sni")
        assert await ws.recv() == "via sni"
        await ws.close()
    assert tls_echo.sni_seen == ["ws.test"]


async def test_untrusted_certificate_is_refused(tls_echo: TlsEcho) -> None:
    # the default context trusts the system store only, which never signed our certificate
    with pytest.raises(HandshakeError, match="TLS handshake"):
        await connect(f"wss://localhost:{tls_echo.port}/", open_timeout=15)


async def test_certificate_for_another_name_is_refused(tls_echo: TlsEcho) -> None:
    with pytest.raises(HandshakeError, match="TLS handshake"):
        await connect(f"wss://127.0.0.1:{tls_echo.port}/", ssl=tls_echo.trusting(), server_hostname="other.test",
                      open_timeout=15)


async def test_ssl_context_on_a_plain_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="plain ws://"):
        await connect("ws://127.0.0.1:9/", ssl=ssl.create_default_context())
