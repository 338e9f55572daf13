"""The `hivecast rtsp pull` command line and the session state table."""

from __future__ import annotations

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
