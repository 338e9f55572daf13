from __future__ import annotations

import pytest

from hivecast.config import ConfigError, load_settings
from hivecast.dht.cli import info_hash_from
from hivecast.dht.component import parse_host_port


def test_dht_section_defaults_and_env() -> None:
    s = load_settings(flags={}, environ={"HIVECAST_DHT__DHT_PORT": "7001", "HIVECAST_DHT__READ_ONLY": "true"})
    assert s.dht.dht_port == 7001 and s.dht.read_only and s.dht.enabled


@pytest.mark.parametrize("bad", [["nohost"], ["host:0"], ["host:70000"], [":6881"], ["h:x"]])
def test_bootstrap_nodes_must_be_host_port(bad: list[str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(flags={"dht": {"bootstrap_nodes": bad}}, environ={})


def test_parsers() -> None:
    assert parse_host_port("router.example:6881") == ("router.example", 6881)
    h = bytes(range(20))
    assert info_hash_from(h.hex()) == h
    assert info_hash_from(f"magnet:?dn=x&xt=urn:btih:{h.hex()}") == h
    import base64

    assert info_hash_from(base64.b32encode(h).decode()) == h
    for bad in ("magnet:?dn=x", "abc", "zz" * 20):
        with pytest.raises(ValueError):
            info_hash_from(bad)
