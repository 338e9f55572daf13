"""RTMPS: ffmpeg publishes over TLS when a certificate is configured; the stream plays over plain RTMP."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import NodeFactory, free_port
from tests.interop.rtmp.helpers import decode, finish, publish_rtmp, rtmp_url, wait_live

pytestmark = [pytest.mark.interop]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


async def test_rtmps_ingest(node_factory: NodeFactory, ffmpeg_exe: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    node = await node_factory(open_publish=True, rtmp={"port": 0, "tls_port": free_port(), "tls_cert": str(cert),
                                                       "tls_key": str(key)})
    port = node.services["rtmps_port"]
    pub = await publish_rtmp(ffmpeg_exe, f"rtmps://127.0.0.1:{port}/live/secure", 8)
    try:
        await wait_live(node, "secure")
        rc, frames, err = await decode(ffmpeg_exe, rtmp_url(node, "secure"), 3)
        assert rc == 0 and not err, err
        assert frames >= 60
    finally:
        rc, err = await finish(pub, 30)
    assert rc == 0, err
