"""The `hivecast rtsp pull` command line and the session state table."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivecast.cli.main import build_parser, main
from hivecast.rtsp.auth import request_key, split_track, stream_name
from hivecast.rtsp.errors import MethodNotValid
from hivecast.rtsp.message import Headers, Request
from hivecast.rtsp.session import State, next_state


def test_pull_command_parses() -> None:
    args = build_parser().parse_args(["rtsp", "pull", "rtsp://cam.local/live", "--as", "lobby", "--rtsp-port", "0"])
    assert args.url == "rtsp://cam.local/live" and args.name == "lobby" and callable(args.func)


def test_pull_rejects_non_rtsp_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rtsp", "pull", "http://x/y", "--as", "n"]) == 2
    assert "rtsp://" in capsys.readouterr().err


def test_state_table() -> None:
    s = next_state(State.INIT, "ANNOUNCE")
    s = next_state(s, "SETUP")
    assert next_state(s, "RECORD") == State.RECORDING
    assert next_state(next_state(State.INIT, "SETUP"), "PLAY") == State.PLAYING
    assert next_state(State.PLAYING, "PAUSE") == State.READY_PLAY
    assert next_state(State.RECORDING, "GET_PARAMETER") == State.RECORDING
    with pytest.raises(MethodNotValid):
        next_state(State.INIT, "PLAY")
    with pytest.raises(MethodNotValid):
        next_state(State.READY_PLAY, "RECORD")


def test_names_tracks_and_keys() -> None:
    assert stream_name("rtsp://h:1/live/cam?key=x") == "live/cam"
    assert split_track("rtsp://h/live/cam/trackID=1") == ("live/cam", "trackID=1")
    assert split_track("rtsp://h/live/cam") == ("live/cam", None)
    assert request_key(Request("ANNOUNCE", "rtsp://h/cam?key=abc")) == "abc"
    basic = Request("ANNOUNCE", "rtsp://h/cam", Headers({"Authorization": "Basic dXNlcjpzM2NyZXQ="}))
    assert request_key(basic) == "s3cret"
    assert request_key(Request("ANNOUNCE", "rtsp://h/cam", Headers({"Authorization": "Basic !!"}))) is None


def test_digest_verification() -> None:
    import hashlib

    from hivecast.rtsp.auth import REALM, NonceIssuer, digest_ok, parse_digest

    nonces = NonceIssuer()
    nonce = nonces.issue(1000.0)

    def md5(t: str) -> str:
        return hashlib.md5(t.encode()).hexdigest()

    uri = "rtsp://h/live/cam"
    response = md5(f"{md5(f'enc:{REALM}:s3cret')}:{nonce}:{md5(f'ANNOUNCE:{uri}')}")
    header = f'Digest username="enc", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{response}"'
    fields = parse_digest(header)
    assert fields is not None
    assert digest_ok(fields, "ANNOUNCE", "s3cret", nonces, 1001.0)
    assert not digest_ok(fields, "ANNOUNCE", "other", nonces, 1001.0)
    assert not digest_ok(fields, "ANNOUNCE", "s3cret", nonces, 1000.0 + 3600)  # stale nonce
    assert not digest_ok(fields, "ANNOUNCE", "s3cret", NonceIssuer(), 1001.0)  # not our nonce
    assert parse_digest("Basic abc") is None


def test_rtsp_settings_from_toml_and_env(tmp_path: Path) -> None:
    from hivecast.config import ConfigError, load_settings

    toml = tmp_path / "hivecast.toml"
    toml.write_text('[rtsp]\nsession_timeout = 30\npublish_keys = { "live/cam" = "k1" }\n'
                    '[rtsp.pull]\nlobby = "rtsp://cam.local/stream"\n')
    s = load_settings(config_file=toml, environ={"HIVECAST_RTSP__REPLACE_PUBLISHER": "true"})
    assert s.rtsp.session_timeout == 30 and s.rtsp.publish_keys == {"live/cam": "k1"}
    assert s.rtsp.pull == {"lobby": "rtsp://cam.local/stream"} and s.rtsp.replace_publisher
    with pytest.raises(ConfigError):
        load_settings(flags={"rtsp": {"mtu": 10}}, environ={})


@pytest.mark.parametrize("qop", ["", ', qop="auth"'])
def test_client_digest_answers_what_the_server_checks(qop: str) -> None:
    from hivecast.rtsp.auth import REALM, NonceIssuer, digest_ok, parse_digest
    from hivecast.rtsp.client import RtspClient

    nonces = NonceIssuer()
    client = RtspClient("rtsp://cam:s3cret@127.0.0.1:554/live/cam")
    assert client.target.url == "rtsp://127.0.0.1:554/live/cam"
    assert client.authorization("DESCRIBE", client.target.url) == "Basic Y2FtOnMzY3JldA=="
    client._digest = parse_digest(f'Digest realm="{REALM}", nonce="{nonces.issue(1000.0)}"{qop}')
    header = client.authorization("DESCRIBE", client.target.url)
    fields = parse_digest(header)
    assert fields is not None and digest_ok(fields, "DESCRIBE", "s3cret", nonces, 1000.5)
    assert not digest_ok(fields, "DESCRIBE", "wrong", nonces, 1000.5)
