"""The edge ring's settings: `[cdn] ring*` in TOML, and the `hivecast edge --ring-*` flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hivecast.cdn.cli import _cdn_flags, register
from hivecast.config import ConfigError, load_settings


def test_ring_settings_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[cdn]\nring = true\nring_port = 7000\nring_seeds = ["10.0.0.2:7000", "edge-b.example:7000"]\n'
                   'ring_timeout = 1.5\n')
    s = load_settings(config_file=cfg, environ={}, check_paths=False)
    assert s.cdn.ring and s.cdn.ring_port == 7000 and s.cdn.ring_timeout == 1.5
    assert s.cdn.ring_seeds == ["10.0.0.2:7000", "edge-b.example:7000"]
    assert not load_settings(environ={}, check_paths=False).cdn.ring  # off unless asked for


@pytest.mark.parametrize("seed", ["10.0.0.2", ":7000", "host:0", "host:70000", "host:x"])
def test_bad_seeds_are_config_errors(tmp_path: Path, seed: str) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[cdn]\nring_seeds = ["{seed}"]\n')
    with pytest.raises(ConfigError):
        load_settings(config_file=cfg, environ={}, check_paths=False)


def test_edge_flags_turn_the_ring_on() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("edge")
    register(sub)
    edge = sub.choices["edge"]
    args = edge.parse_args(["--ring-port", "7000", "--ring-seed", "127.0.0.1:7001", "--ring-seed", "127.0.0.1:7002"])
    assert _cdn_flags(args) == {"ring": True, "ring_port": 7000, "ring_seeds": ["127.0.0.1:7001", "127.0.0.1:7002"]}
    assert "ring" not in _cdn_flags(edge.parse_args([]))
