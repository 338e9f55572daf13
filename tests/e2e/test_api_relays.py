"""GET /api/v1/relays: the node's configured RTMP and RTSP relays with their live status, admins only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from hivecast.api.routers.relays import redact
from tests.conftest import free_port
from tests.e2e._api_support import assert_error, start_api

KEY = "live_1234567890_abcdefSECRET"


def test_redact_hides_keys_and_passwords() -> None:
    assert redact(f"rtmp://a.example:1935/live2/{KEY}") == "rtmp://a.example:1935/live2/live***"
    assert redact("rtmps://u:pw@h/app/cam?key=s3&x=1") == "rtmps://u:***@h/app/cam?key=***&x=1"
    assert redact("rtsp://127.0.0.1:8554/cam") == "rtsp://127.0.0.1:8554/cam"


async def test_relays_list_status_for_admins_only(node_factory: Any) -> None:
    closed = free_port()  # nothing listens there: every attempt fails with "connection refused"
    api = await start_api(node_factory, node_flags={
        "rtmp": {"port": 0, "relay_retry_min": 0.2, "relay_retry_max": 0.4,
                 "push": {"cam": [f"rtmp://127.0.0.1:{closed}/live2/{KEY}"]},
                 "pull": {"back": f"rtmp://127.0.0.1:{closed}/live/src"}},
        "rtsp": {"pull": {"copy": f"rtsp://127.0.0.1:{closed}/src"}}})
    try:
        async with asyncio.timeout(20):
            while True:
                body = (await api.admin.get("/api/v1/relays")).json()
                by_stream = {r["stream"]: r for r in body["data"]}
                if by_stream.get("back", {}).get("reconnects", 0) >= 1 and by_stream.get("copy", {}).get("last_error"):
                    break
                await asyncio.sleep(0.2)
        assert body["success"] is True and body["pagination"]["total"] == 3
        assert [r["stream"] for r in body["data"]] == ["back", "cam", "copy"]
        back, cam, copy = body["data"]
        assert (back["protocol"], back["kind"], back["state"]) == ("rtmp", "pull", "retrying")
        assert back["last_error"] and back["attempts"] == back["reconnects"] + 1 and back["bytes"] == 0
        # The push waits for its local stream, which nobody publishes: no attempt yet, no error.
        assert (cam["protocol"], cam["kind"], cam["state"], cam["attempts"]) == ("rtmp", "push", "waiting", 0)
        assert cam["target"] == f"rtmp://127.0.0.1:{closed}/live2/live***" and KEY not in str(body)
        assert (copy["protocol"], copy["kind"], copy["target"]) == ("rtsp", "pull", f"rtsp://127.0.0.1:{closed}/src")
        only = (await api.admin.get("/api/v1/relays", params={"stream": "cam", "size": 1})).json()
        assert [r["stream"] for r in only["data"]] == ["cam"] and only["pagination"]["pages"] == 1

        viewer, _ = await api.user("viewer")
        assert_error(await viewer.get("/api/v1/relays"), 403)
        async with httpx.AsyncClient(base_url=api.base) as anonymous:
            assert_error(await anonymous.get("/api/v1/relays"), 401)
            doc = (await anonymous.get("/api/v1/openapi.json")).json()
        route = doc["paths"]["/api/v1/relays"]
        assert set(route) == {"get"}  # read-only
        assert {"200", "304", "401", "403"} <= set(route["get"]["responses"])
    finally:
        await api.close()
