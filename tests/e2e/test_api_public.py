"""What visitors without credentials get from the stream list (only streams live on this node,
only public fields), and the ingest URLs an owner gets (RTSP, and RTMP when it is on)."""

from __future__ import annotations

from typing import Any

from hivecast.media.live import LiveRegistry
from tests.e2e._api_support import Api, api, assert_error, database_url

__all__ = ["api", "database_url"]
PUBLIC_FIELDS = {"id", "name", "title", "description", "state", "viewers", "playback_urls", "created_at"}


async def test_visitors_list_only_live_streams_with_public_fields(api: Api) -> None:
    streamer, _ = await api.user("streamer")
    made: dict[str, dict[str, Any]] = {}
    for name in ("pub-a", "pub-b", "pub-c"):
        r = await streamer.post("/api/v1/streams", json={"name": name, "title": name.upper()})
        assert r.status_code == 201, r.text
        made[name] = r.json()["data"]
    registry: LiveRegistry = api.node.services["live_registry"]
    anonymous = api.client()
    empty = await anonymous.get("/api/v1/streams")
    assert empty.status_code == 200 and empty.json()["data"] == []
    assert empty.json()["pagination"] == {"page": 1, "size": 20, "total": 0, "pages": 0}

    publishers = [registry.publish(n, [], source="test") for n in ("pub-a", "pub-c", "no-such-row")]
    try:
        r = await anonymous.get("/api/v1/streams", params={"sort": "name"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["name"] for s in body["data"]] == ["pub-a", "pub-c"]  # a live name without a row is not listed
        assert body["pagination"]["total"] == 2
        for item in body["data"]:
            assert set(item) == PUBLIC_FIELDS
            assert item["state"] == "live" and item["id"] == made[item["name"]]["id"]
            assert item["playback_urls"]["hls"] == f"/live/{item['name']}/index.m3u8"
        assert made["pub-a"]["stream_key"] not in r.text and "ingest" not in r.text and "owner" not in r.text
        # ETag and 304 as for any read.
        again = await anonymous.get("/api/v1/streams", params={"sort": "name"},
                                    headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304
        # Filters and pagination over the live set.
        one = (await anonymous.get("/api/v1/streams", params={"name": "pub-c"})).json()
        assert [s["name"] for s in one["data"]] == ["pub-c"]
        second = (await anonymous.get("/api/v1/streams", params={"size": 1, "page": 2, "sort": "-name"})).json()
        assert [s["name"] for s in second["data"]] == ["pub-a"]
        past = (await anonymous.get("/api/v1/streams", params={"size": 1, "page": 3})).json()
        assert past["data"] == [] and past["pagination"]["total"] == 2
        offline = (await anonymous.get("/api/v1/streams", params={"name": "pub-b"})).json()
        assert offline["data"] == []
        # Owners stay private, single streams need credentials, bad credentials are not "anonymous".
        assert_error(await anonymous.get("/api/v1/streams", params={"owner_id": "a" * 32}), 401)
        assert_error(await anonymous.get(f"/api/v1/streams/{made['pub-a']['id']}"), 401)
        assert_error(await api.client({"x-api-key": "hck_000000000000_nope"}).get("/api/v1/streams"), 401)
        assert_error(await api.client({"authorization": "Bearer not.a.token"}).get("/api/v1/streams"), 401)
        # The owner's view of the same list is the full one.
        mine = (await streamer.get("/api/v1/streams", params={"sort": "name"})).json()["data"]
        assert [s["name"] for s in mine] == ["pub-a", "pub-b", "pub-c"] and "ingest_urls" in mine[0]
    finally:
        for p in publishers:
            p.close()
    gone = (await anonymous.get("/api/v1/streams")).json()
    assert gone["data"] == [] and gone["pagination"]["total"] == 0


async def test_ingest_urls_name_rtsp_and_rtmp(api: Api) -> None:
    r = await api.admin.post("/api/v1/streams", json={"name": "ingest-me"})
    assert r.status_code == 201, r.text
    urls = r.json()["data"]["ingest_urls"]
    rtsp_port, rtmp_port = api.node.services["rtsp_port"], api.node.services["rtmp_port"]
    assert urls["rtsp"] == f"rtsp://127.0.0.1:{rtsp_port}/ingest-me"
    assert urls["rtmp"] == f"rtmp://127.0.0.1:{rtmp_port}/live/ingest-me"
    listed = (await api.admin.get("/api/v1/streams", params={"name": "ingest-me"})).json()["data"][0]
    assert listed["ingest_urls"] == urls


async def test_no_rtmp_url_when_rtmp_is_off(node_factory: Any) -> None:
    from tests.e2e._api_support import start_api

    api = await start_api(node_factory, node_flags={"rtmp": {"enabled": False}})
    try:
        r = await api.admin.post("/api/v1/streams", json={"name": "rtsp-only"})
        assert r.status_code == 201, r.text
        assert r.json()["data"]["ingest_urls"]["rtmp"] is None
        assert r.json()["data"]["ingest_urls"]["rtsp"].endswith("/rtsp-only")
    finally:
        await api.close()


async def test_publish_to_the_api_rtmp_url_and_visitors_see_it_live(api: Api, ffmpeg_exe: str) -> None:
    """The ingest URL the API hands out works with a real encoder, and the stream then shows up
    live in the visitors' list; a wrong key is refused."""
    import asyncio

    streamer, _ = await api.user("streamer")
    made = (await streamer.post("/api/v1/streams", json={"name": "obs-cam", "title": "OBS"})).json()["data"]
    url, key = made["ingest_urls"]["rtmp"], made["stream_key"]

    async def encode(target: str, seconds: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "testsrc=size=320x240:rate=25", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
            "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", "-f", "flv", target,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)

    refused = await encode(f"{url}?key=sk_wrong", 5)
    _, err = await asyncio.wait_for(refused.communicate(), 30)
    assert refused.returncode != 0, err
    anonymous = api.client()
    assert (await anonymous.get("/api/v1/streams")).json()["data"] == []

    encoder = await encode(f"{url}?key={key}", 60)
    try:
        listed: list[dict[str, Any]] = []
        for _ in range(200):
            listed = (await anonymous.get("/api/v1/streams")).json()["data"]
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [(s["name"], s["state"]) for s in listed] == [("obs-cam", "live")], listed
    finally:
        encoder.kill()
        await encoder.wait()
