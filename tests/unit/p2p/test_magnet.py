from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.p2p.magnet import MagnetError, make_magnet, parse_magnet

H = bytes(range(20))


def test_round_trip() -> None:
    uri = make_magnet(H, name="my video", trackers=["http://t:1/announce?x=1"], web_seeds=["http://w/vod/"])
    m = parse_magnet(uri)
    assert m.info_hash == H and m.display_name == "my video"
    assert m.trackers == ("http://t:1/announce?x=1",) and m.web_seeds == ("http://w/vod/",)


def test_base32_and_peers_and_v2() -> None:
    b32 = base64.b32encode(H).decode()
    m = parse_magnet(f"magnet:?xt=urn:btih:{b32}&x.pe=127.0.0.1:6881&xt=urn:btmh:1220{'ab' * 32}")
    assert m.info_hash == H and m.peers == (("127.0.0.1", 6881),) and m.info_hash_v2 == bytes([0xAB]) * 32


@pytest.mark.parametrize("bad", ["http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:zz", "magnet:?xt=urn:btih:" + "g" * 40,
                                 f"magnet:?xt=urn:btih:{H.hex()}&x.pe=nope"])
def test_rejects(bad: str) -> None:
    with pytest.raises(MagnetError):
        parse_magnet(bad)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_fuzz(text: str) -> None:
    try:
        parse_magnet("magnet:?" + text)
    except MagnetError:
        pass
