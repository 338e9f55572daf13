from __future__ import annotations

import os
from pathlib import Path

import pytest

from hivecast.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hivecast.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(flags={"data_dir": tmp_path / "d"}, environ={})
    assert s.http_port == 8080
    assert s.rtsp_port == 8554
    assert s.role == "serve"
    assert s.log_format == "text"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert (tmp_path / "d").is_dir()


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'http_port = 1000\nrtsp_port = 2000\nhost = "127.0.0.2"\ndata_dir = "{tmp_path}"\n'
                          "[limits]\nidle_timeout = 5\nmax_connections = 7\n")
    env = {"HIVECAST_RTSP_PORT": "3000", "HIVECAST_HTTP_PORT": "3001", "HIVECAST_LIMITS__IDLE_TIMEOUT": "9"}
    s = load_settings(config_file=cfg, environ=env, flags={"http_port": 4000})
    assert s.http_port == 4000  # flag beats env beats file
    assert s.rtsp_port == 3000  # env beats file
    assert s.host == "127.0.0.2"  # file beats default
    assert s.limits.idle_timeout == 9.0
    assert s.limits.max_connections == 7


def test_unknown_key_in_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "http_prot = 80\n")
    with pytest.raises(ConfigError, match=r"http_prot: unknown setting.*hivecast.toml"):
        load_settings(config_file=cfg, environ={}, check_paths=False)


def test_unknown_key_in_section(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[limits]\nidle = 3\n")
    with pytest.raises(ConfigError, match=r"limits.idle: unknown setting"):
        load_settings(config_file=cfg, environ={}, check_paths=False)


@pytest.mark.parametrize("port", [65536, -1, "http"])
def test_port_out_of_range(tmp_path: Path, port: object) -> None:
    cfg = write(tmp_path, f"http_port = {port!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=r"bad setting http_port"):
        load_settings(config_file=cfg, environ={}, check_paths=False)


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"rtsp_port.*HIVECAST_RTSP_PORT"):
        load_settings(environ={"HIVECAST_RTSP_PORT": "99999"}, check_paths=False)


def test_unknown_env_variable() -> None:
    with pytest.raises(ConfigError, match="HIVECAST_HTTP_PROT"):
        load_settings(environ={"HIVECAST_HTTP_PROT": "1"}, check_paths=False)


def test_test_prefixed_env_is_ignored() -> None:
    s = load_settings(environ={"HIVECAST_TEST_WHATEVER": "x"}, check_paths=False)
    assert s.http_port == 8080


def test_invalid_toml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "http_port = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=cfg, environ={}, check_paths=False)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml", environ={}, check_paths=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the file-in-the-way case")
def test_unwritable_data_dir(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="not writable"):
        load_settings(flags={"data_dir": locked / "data"}, environ={})


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        load_settings(flags={"data_dir": blocker / "data"}, environ={})


def test_edge_urls_validated() -> None:
    with pytest.raises(ConfigError, match="origin_url"):
        load_settings(flags={"origin_url": "ftp://x"}, environ={}, check_paths=False)
    s = load_settings(flags={"origin_url": "http://127.0.0.1:8080/"}, environ={}, check_paths=False)
    assert s.origin_url == "http://127.0.0.1:8080"


def test_limits_map_to_connection_limits() -> None:
    s = load_settings(environ={"HIVECAST_LIMITS__WRITE_TIMEOUT": "3"}, check_paths=False)
    assert s.limits.connection_limits().write_timeout == 3.0


def test_section_env_without_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="names the section"):
        load_settings(environ={"HIVECAST_LIMITS": "3"}, check_paths=False)
