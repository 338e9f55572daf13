"""Opening handshake: RFC 6455 section 4 example, refusals with the right HTTP status, client checks,
and fuzzed response heads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivecast.ws.errors import HandshakeError
from hivecast.ws.handshake import ClientHandshake, ResponseHead, accept, accept_key, parse_response_head

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request_headers(**over: str | None) -> list[tuple[str, str]]:
    base = {"host": "server.example.com", "upgrade": "websocket", "connection": "keep-alive, Upgrade",
            "sec-websocket-key": KEY, "sec-websocket-version": "13", "origin": "http://example.com"}
    for k, v in over.items():
        k = k.replace("_", "-")
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return list(base.items())


def test_rfc_accept_key() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    acc = accept("GET", "1.1", request_headers())
    assert ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in acc.headers
    assert acc.deflate is None and acc.subprotocol is None


@pytest.mark.parametrize(
    ("method", "over", "status"),
    [
        ("POST", {}, 405),
        ("GET", {"upgrade": None}, 426),
        ("GET", {"connection": "keep-alive"}, 400),
        ("GET", {"sec_websocket_version": "8"}, 426),
        ("GET", {"sec_websocket_key": None}, 400),
        ("GET", {"sec_websocket_key": "short"}, 400),
        ("GET", {"sec_websocket_key": "!!!!"}, 400),
    ],
)
def test_refusals(method: str, over: dict[str, str | None], status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        accept(method, "1.1", request_headers(**over))
    assert info.value.status == status


def test_origin_check_and_subprotocol_and_deflate() -> None:
    with pytest.raises(HandshakeError) as info:
        accept("GET", "1.1", request_headers(), origin_allowed=lambda o: o == "http://good")
    assert info.value.status == 403
    acc = accept("GET", "1.1", request_headers(sec_websocket_protocol="chat.v2, chat.v1",
                                               sec_websocket_extensions="x-foo, permessage-deflate; client_max_window_bits"),
                 subprotocols=["chat.v1"])
    assert acc.subprotocol == "chat.v1"
    assert acc.deflate is not None and acc.deflate.server_no_context_takeover
    assert ("sec-websocket-extensions", "permessage-deflate; server_no_context_takeover") in acc.headers


def test_client_handshake_round_trip() -> None:
    hs = ClientHandshake("127.0.0.1:80", "/ws/echo?x=1", subprotocols=["a"])
    req = hs.request_bytes().decode()
    assert req.startswith("GET /ws/echo?x=1 HTTP/1.1\r\n") and req.endswith("\r\n\r\n")
    lines = [ln.split(": ", 1) for ln in req.split("\r\n")[1:] if ln]
    acc = accept("GET", "1.1", [(k, v) for k, v in lines], subprotocols=["a"])
    head_raw = b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in acc.headers) + b"\r\nREST"
    parsed = parse_response_head(head_raw)
    assert parsed is not None
    head, used = parsed
    assert head_raw[used:] == b"REST"
    deflate, sub = hs.check(head)
    assert sub == "a" and deflate is not None


def test_client_rejects_bad_answers() -> None:
    hs = ClientHandshake("h", "/")
    good = [("upgrade", "websocket"), ("connection", "upgrade"), ("sec-websocket-accept", accept_key(hs.key))]
    with pytest.raises(HandshakeError):
        hs.check(ResponseHead(200, "OK", good))
    with pytest.raises(HandshakeError):
        hs.check(ResponseHead(101, "", [*good[:2], ("sec-websocket-accept", "wrong")]))
    with pytest.raises(HandshakeError):
        hs.check(ResponseHead(101, "", [*good, ("sec-websocket-extensions", "x-unknown")]))
    with pytest.raises(HandshakeError):
        hs.check(ResponseHead(101, "", [*good, ("sec-websocket-protocol", "never-offered")]))


def test_response_head_bounds() -> None:
    assert parse_response_head(b"HTTP/1.1 101 OK\r\nA: b\r\n") is None
    with pytest.raises(HandshakeError):
        parse_response_head(b"HTTP/1.1 101 OK\r\n" + b"a: b\r\n" * 5000, max_size=1024)
    with pytest.raises(HandshakeError):
        parse_response_head(b"HTTP/1.1 101 OK\r\n" + b"a: b\r\n" * 200 + b"\r\n")
    with pytest.raises(HandshakeError):
        parse_response_head(b"SPDY/9 101 OK\r\n\r\n")


@given(st.binary(max_size=600))
def test_response_head_fuzz(data: bytes) -> None:
    try:
        parse_response_head(data, max_size=256)
    except HandshakeError:
        pass


@given(st.lists(st.tuples(st.sampled_from(["upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                                           "sec-websocket-extensions", "sec-websocket-protocol", "origin"]),
                          st.text(max_size=40)), max_size=10), st.sampled_from(["GET", "POST"]))
def test_request_fuzz(headers: list[tuple[str, str]], method: str) -> None:
    try:
        accept(method, "1.1", headers, subprotocols=["x"])
    except HandshakeError as exc:
        assert 400 <= exc.status < 500
