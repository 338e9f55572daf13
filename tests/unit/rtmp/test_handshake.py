"""The handshake: plain and digest forms both ways, garbage refused, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.rtmp import handshake
from hivecast.rtmp.errors import HandshakeError
from hivecast.rtmp.handshake import ClientHandshake, ServerHandshake


@pytest.mark.parametrize("digest", [True, False])
def test_client_server(digest: bool) -> None:
    s, c = ServerHandshake(now_ms=5), ClientHandshake(now_ms=7, digest=digest)
    s.receive_data(c.start())
    s0s1s2 = s.data_to_send()
    assert len(s0s1s2) == 1 + 2 * 1536 and s0s1s2[0] == 3
    c2 = c.receive_data(s0s1s2)
    assert c.done and c.server_digest_verified is digest and s.digest_form is digest
    s.receive_data(c2 + b"\x03rest")
    assert s.done and s.leftover == b"\x03rest"


def test_plain_s2_echoes_c1() -> None:
    s = ServerHandshake(now_ms=1)
    c1 = handshake.make_plain_packet(99)
    s.receive_data(b"\x03" + c1)
    out = s.data_to_send()
    s2 = out[1 + 1536 :]
    assert s2[:4] == c1[:4] and s2[8:] == c1[8:]


def test_digest_scheme_1_is_found() -> None:
    c1 = handshake.make_digest_packet(0, handshake.CLIENT_VERSION, handshake.FP_KEY_PARTIAL, scheme=1)
    assert handshake.find_digest(c1, handshake.FP_KEY_PARTIAL) is not None
    s = ServerHandshake()
    s.receive_data(b"\x03" + c1)
    assert s.digest_form


def test_byte_at_a_time() -> None:
    s, c = ServerHandshake(), ClientHandshake()
    for b in c.start():
        s.receive_data(bytes([b]))
    assert s.state is handshake.State.WAIT_2


@pytest.mark.parametrize("first", [b"\x06", b"\x08", b"G", b"\x00"])
def test_garbage_version_refused(first: bytes) -> None:
    with pytest.raises(HandshakeError):
        ServerHandshake().receive_data(first + b"\x00" * 100)


@given(st.binary(max_size=4000))
@settings(max_examples=300, deadline=None)
def test_fuzz(data: bytes) -> None:
    s = ServerHandshake()
    try:
        s.receive_data(data)
    except HandshakeError:
        return
    c = ClientHandshake()
    c.start()
    try:
        c.receive_data(data)
    except HandshakeError:
        pass
