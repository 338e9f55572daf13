"""The stream representation is built as plain JSON (no pydantic model per item): it must stay
exactly what the documented StreamOut schema would produce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hivecast.api.responses import json_time
from hivecast.api.routers.streams import Where, stream_json
from hivecast.api.schemas import StreamOut, StreamWithKey

_LIVE = {"state": "live", "viewers": 3, "qos": {"bitrate_kbps": 2500.5, "fps": 30}, "tracks": [{"codec": "h264"}]}
_OFF = {"state": "offline", "viewers": 0, "qos": {}, "tracks": []}


def _row(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "id": "ab" * 16, "name": "cam-1", "title": "Cam", "description": None, "owner_id": "cd" * 16,
        "key_rotated_at": datetime(2026, 1, 2, 3, 4, 5), "created_at": datetime(2026, 1, 2, 3, 4, 5, 120),
        "updated_at": datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
    }
    base.update(kw)
    return SimpleNamespace(**base)


def test_matches_the_schema_with_and_without_rtmp() -> None:
    for where in (Where("example.org", 8554, 1935, "live"), Where("10.0.0.1", 8554, None, "live")):
        for live in (_LIVE, _OFF):
            data = stream_json(_row(), live, where)
            assert StreamOut.model_validate(data).model_dump(mode="json") == data
    data = stream_json(_row(description="about"), _LIVE, Where("h", 1, 2, "app"))
    assert data["ingest_urls"] == {"rtsp": "rtsp://h:1/cam-1", "rtmp": "rtmp://h:2/app/cam-1"}
    assert stream_json(_row(), _LIVE, Where("h", 1, None, "live"))["ingest_urls"]["rtmp"] is None
    keyed = {**data, "stream_key": "sk_x"}
    assert StreamWithKey.model_validate(keyed).model_dump(mode="json") == keyed


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31)),
       st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]))
def test_json_time_is_pydantics_format(moment: datetime, tz: timezone | None) -> None:
    value = moment.replace(tzinfo=tz)
    expected = StreamOut.model_validate(stream_json(_row(created_at=value), _OFF, Where("h", 1, None, "live")))
    assert json_time(value) == expected.model_dump(mode="json")["created_at"]


def test_public_view_matches_its_schema_and_holds_nothing_private() -> None:
    from hivecast.api.routers.streams import public_json
    from hivecast.api.schemas import StreamPublic

    data = public_json(_row(), _LIVE)
    assert StreamPublic.model_validate(data).model_dump(mode="json") == data
    assert not {"owner_id", "ingest_urls", "stream_key", "key_rotated_at", "qos"} & set(data)
    assert data["playback_urls"]["hls"] == "/live/cam-1/index.m3u8"
