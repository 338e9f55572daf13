"""Resources end to end: CRUD and HTTP semantics (201 + Location, PUT vs JSON Merge Patch, 204
idempotent DELETE, ETag/304/412), pagination edges, sorting and filters, stream keys and the
publish authorizer, edges, purges on the bus, comments by cursor, resumable uploads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

from tests.e2e._api_support import Api, api, assert_error, database_url

__all__ = ["api", "database_url"]
MERGE = {"content-type": "application/merge-patch+json"}


async def test_stream_crud_put_vs_patch(api: Api) -> None:
    c = api.admin
    r = await c.post("/api/v1/streams", json={"name": "cam1", "title": "Camera", "description": "front door"})
    assert r.status_code == 201
    created = r.json()["data"]
    assert r.headers["location"] == f"/api/v1/streams/{created['id']}"
    assert created["stream_key"].startswith("sk_")
    assert created["ingest_urls"]["rtsp"].endswith("/cam1")
    assert created["playback_urls"] == {"hls": "/live/cam1/index.m3u8", "dash": "/live/cam1/manifest.mpd"}
    assert created["state"] == "offline" and created["viewers"] == 0
    url = r.headers["location"]
    got = (await c.get(url)).json()["data"]
    assert "stream_key" not in got
    assert_error(await c.post("/api/v1/streams", json={"name": "cam1"}), 409, "CONFLICT")

    # PATCH (merge patch): only the members sent change; null removes.
    r = await c.patch(url, json={"title": "Cam"}, headers=MERGE)
    assert r.json()["data"]["title"] == "Cam" and r.json()["data"]["description"] == "front door"
    r = await c.patch(url, json={"description": None}, headers=MERGE)
    assert r.json()["data"]["description"] is None and r.json()["data"]["title"] == "Cam"
    # PUT replaces the whole mutable representation: every member is required.
    assert_error(await c.put(url, json={"title": "only title"}), 422)
    r = await c.put(url, json={"title": "T", "description": "D"})
    assert r.status_code == 200 and (r.json()["data"]["title"], r.json()["data"]["description"]) == ("T", "D")
    again = await c.put(url, json={"title": "T", "description": "D"})  # idempotent
    assert again.json()["data"]["title"] == "T"
    assert_error(await c.patch(url, json={"name": "renamed"}, headers=MERGE), 422)

    assert (await c.delete(url)).status_code == 204
    assert (await c.delete(url)).status_code == 204
    assert_error(await c.get(url), 404, "NOT_FOUND")


async def test_etag_304_and_412(api: Api) -> None:
    c = api.admin
    url = (await c.post("/api/v1/streams", json={"name": "etag"})).headers["location"]
    r = await c.get(url)
    tag = r.headers["etag"]
    r304 = await c.get(url, headers={"if-none-match": tag})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == tag
    assert (await c.get(url, headers={"if-none-match": '"other"'})).status_code == 200
    # A write with the current tag succeeds and changes the tag; the old tag then fails with 412.
    ok = await c.patch(url, json={"title": "v2"}, headers={**MERGE, "if-match": tag})
    assert ok.status_code == 200
    new_tag = (await c.get(url)).headers["etag"]
    assert new_tag != tag
    assert_error(await c.patch(url, json={"title": "v3"}, headers={**MERGE, "if-match": tag}), 412,
                 "PRECONDITION_FAILED")
    assert_error(await c.put(url, json={"title": "v3", "description": None}, headers={"if-match": tag}), 412)
    assert_error(await c.delete(url, headers={"if-match": tag}), 412)
    assert (await c.get(url)).json()["data"]["title"] == "v2"
    assert (await c.get(url, headers={"if-none-match": tag})).status_code == 200
    assert (await c.delete(url, headers={"if-match": new_tag})).status_code == 204
    # Lists carry ETags too.
    lst = await c.get("/api/v1/streams")
    assert (await c.get("/api/v1/streams", headers={"if-none-match": lst.headers["etag"]})).status_code == 304


async def test_pagination_edges_sorting_and_filters(api: Api) -> None:
    streamer, uid = await api.user("streamer")
    empty = (await streamer.get("/api/v1/streams")).json()
    assert empty["data"] == [] and empty["pagination"] == {"page": 1, "size": 20, "total": 0, "pages": 0}
    for name in ["e", "b", "d", "a", "c"]:
        assert (await streamer.post("/api/v1/streams", json={"name": name})).status_code == 201
    p1 = (await streamer.get("/api/v1/streams", params={"size": 2, "sort": "name"})).json()
    assert [s["name"] for s in p1["data"]] == ["a", "b"]
    assert p1["pagination"] == {"page": 1, "size": 2, "total": 5, "pages": 3}
    last = (await streamer.get("/api/v1/streams", params={"size": 2, "page": 3, "sort": "name"})).json()
    assert [s["name"] for s in last["data"]] == ["e"]
    beyond = (await streamer.get("/api/v1/streams", params={"size": 2, "page": 4})).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 5
    desc = (await streamer.get("/api/v1/streams", params={"sort": "-name"})).json()
    assert [s["name"] for s in desc["data"]] == ["e", "d", "c", "b", "a"]
    assert_error(await streamer.get("/api/v1/streams", params={"size": 0}), 422)
    assert_error(await streamer.get("/api/v1/streams", params={"size": 101}), 422)
    assert_error(await streamer.get("/api/v1/streams", params={"page": "x"}), 422)
    assert (await streamer.get("/api/v1/streams", params={"size": 100})).status_code == 200
    # Filters on indexed fields.
    one = (await api.admin.get("/api/v1/streams", params={"name": "c"})).json()
    assert [s["name"] for s in one["data"]] == ["c"]
    by_owner = (await api.admin.get("/api/v1/streams", params={"owner_id": uid})).json()
    assert by_owner["pagination"]["total"] == 5
    viewers = (await api.admin.get("/api/v1/users", params={"role": "viewer"})).json()
    assert viewers["pagination"]["total"] == 0


async def test_stream_key_rotation_and_publish_authorizer(api: Api) -> None:
    streamer, _ = await api.user("streamer")
    r = await streamer.post("/api/v1/streams", json={"name": "show"})
    sid, key = r.json()["data"]["id"], r.json()["data"]["stream_key"]
    authorizer = api.node.services["publish_authorizer"]
    assert await authorizer.authorize_publish("show", key) is True
    assert await authorizer.authorize_publish("show", "sk_wrong") is False
    assert await authorizer.authorize_publish("show", None) is False
    assert await authorizer.authorize_publish("other", key) is False
    r = await streamer.post(f"/api/v1/streams/{sid}/key")
    assert r.status_code == 200
    new_key = r.json()["data"]["stream_key"]
    assert new_key != key
    assert await authorizer.authorize_publish("show", key) is False
    assert await authorizer.authorize_publish("show", new_key) is True


class _Registry:
    """Stands in for the live registry by its documented contract (notes/contracts.md)."""

    def info(self, name: str) -> dict[str, object] | None:
        if name != "onair":
            return None
        return {"state": "live", "readers": 3, "qos": {"bitrate_bps": 4_000_000, "fps": 30.0},
                "tracks": [{"id": 0, "codec": "h264"}]}


class _Edges:
    def __init__(self) -> None:
        self.draining: dict[str, bool] = {"edge-a": False}

    def list_edges(self) -> list[dict[str, object]]:
        return [{"id": eid, "url": "http://127.0.0.1:9", "region": "local", "healthy": True, "draining": d,
                 "load": {"connections": 4, "bandwidth_bps": 1000, "cpu": 0.1}, "last_seen": 1.0}
                for eid, d in self.draining.items()]

    def set_draining(self, edge_id: str, draining: bool) -> bool:
        if edge_id not in self.draining:
            return False
        self.draining[edge_id] = draining
        return True


async def test_live_state_and_edges_from_services(api: Api) -> None:
    c = api.admin
    assert (await c.get("/api/v1/edges")).json()["data"] == []  # no CDN on this node
    api.node.services["live_registry"] = _Registry()
    api.node.services["edge_registry"] = _Edges()
    sid = (await c.post("/api/v1/streams", json={"name": "onair"})).json()["data"]["id"]
    s = (await c.get(f"/api/v1/streams/{sid}")).json()["data"]
    assert (s["state"], s["viewers"], s["qos"]["fps"]) == ("live", 3, 30.0)
    edges = (await c.get("/api/v1/edges")).json()
    assert edges["pagination"]["total"] == 1 and edges["data"][0]["load"]["connections"] == 4
    r = await c.patch("/api/v1/edges/edge-a", json={"draining": True})
    assert r.status_code == 200 and r.json()["data"]["draining"] is True
    assert_error(await c.patch("/api/v1/edges/nope", json={"draining": True}), 404)


async def test_purges_are_published_and_kept(api: Api) -> None:
    sub = api.node.bus.subscribe("cdn.*")
    r = await api.admin.post("/api/v1/purges", json={"kind": "prefix", "values": ["/live/cam1/"]})
    assert r.status_code == 201
    purge = r.json()["data"]
    event = await asyncio.wait_for(sub.get(), 5)
    assert event.topic == "cdn.purge"
    assert event.data == {"id": purge["id"], "kind": "prefix", "values": ["/live/cam1/"]}
    r = await api.admin.post("/api/v1/purges", json={"kind": "prefetch", "values": ["/vod/x/index.m3u8"]})
    event = await asyncio.wait_for(sub.get(), 5)
    assert event.topic == "cdn.prefetch" and event.data["urls"] == ["/vod/x/index.m3u8"]
    assert (await api.admin.get(r.headers["location"])).json()["data"]["kind"] == "prefetch"
    assert (await api.admin.get("/api/v1/purges", params={"kind": "prefix"})).json()["pagination"]["total"] == 1
    assert_error(await api.admin.post("/api/v1/purges", json={"kind": "url", "values": []}), 422)
    assert_error(await api.admin.post("/api/v1/purges", json={"kind": "everything", "values": ["/"]}), 422)
    sub.close()


async def test_comments_by_cursor(api: Api) -> None:
    streamer, _ = await api.user("streamer")
    viewer, _ = await api.user("viewer")
    vid = (await streamer.post("/api/v1/videos", json={"title": "clip", "size": 3})).json()["data"]["id"]
    empty = (await viewer.get(f"/api/v1/videos/{vid}/comments")).json()
    assert empty["data"] == [] and empty["pagination"]["next_cursor"] is None
    for i in range(5):
        assert (await viewer.post(f"/api/v1/videos/{vid}/comments", json={"body": f"c{i}"})).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"size": 2} | ({"cursor": cursor} if cursor is not None else {})
        page = (await viewer.get(f"/api/v1/videos/{vid}/comments", params=params)).json()
        seen += [c["body"] for c in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c0", "c1", "c2", "c3", "c4"]
    first = (await viewer.get(f"/api/v1/videos/{vid}/comments", params={"size": 1})).json()["data"][0]
    assert_error(await streamer.delete(f"/api/v1/videos/{vid}/comments/{first['id']}"), 403)
    assert (await viewer.delete(f"/api/v1/videos/{vid}/comments/{first['id']}")).status_code == 204
    assert_error(await viewer.post(f"/api/v1/videos/{'0' * 32}/comments", json={"body": "x"}), 404)
    # The answer to a POST is the same representation a later GET gives (and what the schema says).
    made = await viewer.post(f"/api/v1/videos/{vid}/comments", json={"body": "same <b>as</b> read"})
    assert made.status_code == 201
    again = await viewer.get(made.headers["location"])
    assert again.status_code == 200 and again.json()["data"] == made.json()["data"]
    assert_error(await viewer.post(f"/api/v1/videos/{vid}/comments", json={"body": ""}), 422)


def _b64sha(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_resumable_upload(api: Api) -> None:
    streamer, _ = await api.user("streamer")
    blob = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB
    digest = hashlib.sha256(blob).hexdigest()
    r = await streamer.post("/api/v1/videos", json={"title": "movie", "size": len(blob), "sha256": digest,
                                                    "filename": "movie.mp4"})
    assert r.status_code == 201
    video = r.json()["data"]
    up = video["upload_url"]
    assert video["state"] == "awaiting_upload" and r.headers["tus-resumable"] == "1.0.0"
    octet = {"content-type": "application/offset+octet-stream", "tus-resumable": "1.0.0"}
    head = await streamer.head(up)
    assert head.headers["upload-offset"] == "0" and head.headers["upload-length"] == str(len(blob))

    part = blob[:300_000]
    r = await streamer.patch(up, content=part, headers={**octet, "upload-offset": "0", "upload-checksum": _b64sha(part)})
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(part))
    # Wrong offset: 409 with the real one; bad chunk checksum: 460 and nothing kept.
    r = await streamer.patch(up, content=b"xx", headers={**octet, "upload-offset": "5"})
    assert_error(r, 409, "OFFSET_MISMATCH")
    assert r.headers["upload-offset"] == str(len(part))
    bad = blob[300_000:400_000]
    r = await streamer.patch(up, content=bad, headers={**octet, "upload-offset": str(len(part)),
                                                       "upload-checksum": _b64sha(b"other")})
    assert_error(r, 460, "CHECKSUM_MISMATCH")
    assert (await streamer.head(up)).headers["upload-offset"] == str(len(part))
    assert_error(await streamer.patch(up, content=b"x", headers={"content-type": "application/json",
                                                                 "upload-offset": "0"}), 415)
    other, _ = await api.user("streamer")
    assert_error(await other.patch(up, content=b"x", headers={**octet, "upload-offset": str(len(part))}), 403)
    # Past the declared length: refused.
    r = await streamer.patch(up, content=blob[len(part):] + b"extra", headers={**octet, "upload-offset": str(len(part))})
    assert_error(r, 413)
    offset = int((await streamer.head(up)).headers["upload-offset"])
    r = await streamer.patch(up, content=blob[offset:], headers={**octet, "upload-offset": str(offset)})
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(blob))
    done = (await streamer.get(f"/api/v1/videos/{video['id']}")).json()["data"]
    assert done["state"] not in ("awaiting_upload", "uploading") and done["sha256"] == digest and done["upload_offset"] == len(blob)
    stored = Path(api.node.settings.data_dir) / "uploads" / video["id"] / "source.mp4"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    assert_error(await streamer.patch(up, content=b"x", headers={**octet, "upload-offset": str(len(blob))}), 409)
    assert (await streamer.delete(f"/api/v1/videos/{video['id']}")).status_code == 204
    assert not stored.exists()


async def test_upload_with_wrong_whole_file_hash_is_rejected(api: Api) -> None:
    blob = b"a" * 1000
    r = await api.admin.post("/api/v1/videos", json={"title": "x", "size": 1000, "sha256": "0" * 64})
    up = r.json()["data"]["upload_url"]
    r = await api.admin.patch(up, content=blob, headers={"content-type": "application/offset+octet-stream",
                                                         "upload-offset": "0"})
    assert_error(r, 409, "CHECKSUM_MISMATCH")
    v = (await api.admin.get(up.removesuffix("/upload"))).json()["data"]
    assert v["state"] == "awaiting_upload" and (await api.admin.head(up)).headers["upload-offset"] == "0"


async def test_videos_by_cursor_are_stable_while_videos_are_added(api: Api) -> None:
    streamer, uid = await api.user("streamer")
    for i in range(5):
        assert (await streamer.post("/api/v1/videos", json={"title": f"v{i}", "size": 1})).status_code == 201
    first = (await streamer.get("/api/v1/videos", params={"size": 2, "owner_id": uid})).json()
    assert [v["title"] for v in first["data"]] == ["v4", "v3"]
    cursor = first["pagination"]["next_cursor"]
    assert cursor
    # A video added now does not shift what the cursor returns (a page number would).
    await streamer.post("/api/v1/videos", json={"title": "late", "size": 1})
    seen = [v["title"] for v in first["data"]]
    while cursor:
        page = (await streamer.get("/api/v1/videos", params={"size": 2, "owner_id": uid, "cursor": cursor})).json()
        seen += [v["title"] for v in page["data"]]
        cursor = page["pagination"]["next_cursor"]
    assert seen == ["v4", "v3", "v2", "v1", "v0"]
    # Any cursor-shaped value is a position: far future gives everything, far past nothing.
    future = (await streamer.get("/api/v1/videos", params={"cursor": "9" * 16 + "-" + "f" * 32})).json()
    assert future["pagination"]["total"] == 6
    past = (await streamer.get("/api/v1/videos", params={"cursor": "0-" + "0" * 32})).json()
    assert past["data"] == [] and past["pagination"]["next_cursor"] is None
    assert_error(await streamer.get("/api/v1/videos", params={"cursor": "abc"}), 422)
