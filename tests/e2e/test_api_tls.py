"""HTTPS on the front door: a self-signed certificate made by the openssl CLI, the API and health
over TLS, WebSocket over TLS (wss), plain HTTP to the TLS port refused without harm, and clear
start-up errors for a bad certificate configuration."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivecast.node import Node
from hivecast.node.node import StartupError

ADMIN = {"admin_username": "admin", "admin_password": "adminpass1"}


def make_cert(directory: Path, name: str = "node") -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command-line tool is not installed (apt-get install openssl)")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def encrypted_copy(key: Path) -> Path:
    locked = key.with_name("locked.key")
    subprocess.run(["openssl", "pkey", "-in", str(key), "-out", str(locked), "-aes256", "-passout", "pass:secret1"],
                   check=True, capture_output=True)
    return locked


def client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def https_url(node: Node, path: str = "") -> str:
    return f"https://127.0.0.1:{node.services['http_port']}{path}"


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path)


async def test_health_and_api_over_https(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key, api=ADMIN)
    assert node.services["http_scheme"] == "https"
    async with httpx.AsyncClient(verify=client_context(cert), timeout=10) as client:
        health = await client.get(https_url(node, "/healthz"))
        assert health.status_code == 200 and health.json()["status"] == "ok"
        root = await client.get(https_url(node, "/api/v1"))
        assert root.status_code == 200 and root.json()["success"] is True
        login = await client.post(https_url(node, "/api/v1/auth/login"),
                                  json={"username": "admin", "password": "adminpass1"})
        assert login.status_code == 200, login.text
        token = login.json()["data"]["access_token"]
        created = await client.post(https_url(node, "/api/v1/streams"), json={"name": "tlscam"},
                                    headers={"authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text
        listed = await client.get(https_url(node, "/api/v1/streams"), headers={"authorization": f"Bearer {token}"})
        assert [s["name"] for s in listed.json()["data"]] == ["tlscam"]
    # A client that does not trust the certificate is refused by its own verification.
    async with httpx.AsyncClient(timeout=10) as untrusting:
        with pytest.raises(httpx.ConnectError):
            await untrusting.get(https_url(node, "/healthz"))


async def test_files_over_https_whole_and_ranged(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    """Zero-copy sendfile would put clear bytes on a TLS socket: large media must still arrive intact."""
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key)
    video = node.settings.media_dir / "vod" / ("ab" * 16)
    video.mkdir(parents=True)
    payload = os.urandom(3 * 1024 * 1024 + 123)
    (video / "seg1.m4s").write_bytes(payload)
    url = https_url(node, f"/vod/{'ab' * 16}/seg1.m4s")
    async with httpx.AsyncClient(verify=client_context(cert), timeout=20) as client:
        for _ in range(2):  # a miss, then a hit of the embedded edge cache
            whole = await client.get(url)
            assert whole.status_code == 200 and whole.content == payload
        part = await client.get(url, headers={"range": "bytes=1000000-2999999"})
        assert part.status_code == 206 and part.content == payload[1_000_000:3_000_000]
        page = await client.get(https_url(node, "/"))
        assert page.status_code == 200 and b"<html" in page.content.lower()


async def test_alpn_settles_on_http11(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"],
                                                   ssl=client_context(cert), server_hostname="localhost")
    try:
        tls = writer.get_extra_info("ssl_object")
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_websocket_over_tls(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    websockets = pytest.importorskip("websockets")
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key, ws={"echo": True})
    url = f"wss://127.0.0.1:{node.services['http_port']}/ws/echo"
    async with websockets.connect(url, ssl=client_context(cert), server_hostname="localhost",
                                  open_timeout=10) as ws:
        for message in ("hello over tls", b"\x00\x01binary" * 1000):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), timeout=10) == message


async def test_plain_http_to_tls_port_fails_cleanly(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key)
    port = node.services["http_port"]
    async with httpx.AsyncClient(timeout=10) as plain:
        with pytest.raises(httpx.TransportError):
            await plain.get(f"http://127.0.0.1:{port}/healthz")

    def raw_plain_request() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            try:
                while chunk := sock.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass
            return received

    answer = await asyncio.to_thread(raw_plain_request)  # the server closes; it never answers in clear
    assert b"HTTP/1." not in answer and b"status" not in answer
    # ... and it goes on serving HTTPS.
    async with httpx.AsyncClient(verify=client_context(cert), timeout=10) as client:
        for _ in range(3):
            assert (await client.get(https_url(node, "/healthz"))).status_code == 200


async def test_edge_front_door_serves_https(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    origin = await node_factory("origin")
    edge = await node_factory("edge", origin_url=f"http://127.0.0.1:{origin.services['http_port']}",
                              http_tls_cert=cert, http_tls_key=key)
    async with httpx.AsyncClient(verify=client_context(cert), timeout=10) as client:
        health = await client.get(https_url(edge, "/healthz"))
        assert health.status_code == 200 and health.json()["role"] == "edge"


@pytest.mark.parametrize("case", ["missing cert", "missing key", "only cert", "not pem", "key mismatch",
                                  "encrypted key"])
async def test_bad_tls_config_is_a_clear_startup_error(node_factory: Any, tmp_path: Path, case: str) -> None:
    cert, key = make_cert(tmp_path)
    flags: dict[str, Any] = {"http_tls_cert": cert, "http_tls_key": key}
    expected = ""
    if case == "missing cert":
        flags["http_tls_cert"] = tmp_path / "nope.crt"
        expected = "nope.crt does not exist"
    elif case == "missing key":
        flags["http_tls_key"] = tmp_path / "nope.key"
        expected = "nope.key does not exist"
    elif case == "only cert":
        del flags["http_tls_key"]
        expected = "set both http_tls_cert and http_tls_key"
    elif case == "not pem":
        junk = tmp_path / "junk.crt"
        junk.write_bytes(b"\x30\x82 this is not a certificate")
        flags["http_tls_cert"] = junk
        expected = "is not PEM"
    elif case == "key mismatch":
        _, other_key = make_cert(tmp_path, "other")
        flags["http_tls_key"] = other_key
        expected = "does not match the certificate"
    elif case == "encrypted key":
        flags["http_tls_key"] = encrypted_copy(key)
        expected = "is encrypted"
    with pytest.raises(StartupError) as err:
        await node_factory(**flags)
    assert expected in str(err.value)
    assert "Traceback" not in str(err.value)


def test_cli_reports_a_bad_certificate_and_exits(tmp_path: Path) -> None:
    config = tmp_path / "hivecast.toml"
    config.write_text(f'http_tls_cert = "{tmp_path / "absent.crt"}"\nhttp_tls_key = "{tmp_path / "absent.key"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}
    done = subprocess.run([sys.executable, "-m", "hivecast", "serve", "--config", str(config), "--host", "127.0.0.1",
                           "--http-port", "0", "--rtsp-port", "0", "--data-dir", str(tmp_path / "data")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "absent.crt does not exist" in done.stderr
    assert "Traceback" not in done.stderr


async def test_api_cli_over_https_with_cacert(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key, api=ADMIN)
    async with httpx.AsyncClient(verify=client_context(cert), timeout=10) as client:
        login = await client.post(https_url(node, "/api/v1/auth/login"),
                                  json={"username": "admin", "password": "adminpass1"})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HIVECAST_", "HC_"))},
           "HC_API": https_url(node), "HC_TOKEN": login.json()["data"]["access_token"], "COLUMNS": "200"}

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hivecast", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    code, out = await cli("stream", "create", "over-tls", "--cacert", str(cert))
    assert code == 0 and "sk_" in out, out
    code, out = await cli("stream", "list")  # without the certificate: refused, and said so
    assert code != 0 and "over-tls" not in out
    assert "certificate" in out.lower() and "Traceback" not in out, out


async def test_a_client_that_never_handshakes_is_cut_off(node_factory: Any, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    node = await node_factory(http_tls_cert=cert, http_tls_key=key, limits={"header_timeout": 0.5})
    reader, writer = await asyncio.open_connection("127.0.0.1", node.services["http_port"])
    try:
        # Silent after connecting: the server gives up on the handshake (header_timeout) and closes.
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
    finally:
        writer.close()
    async with httpx.AsyncClient(verify=client_context(cert), timeout=10) as client:
        assert (await client.get(https_url(node, "/healthz"))).status_code == 200
