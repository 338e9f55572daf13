"""The API's HTTP rules end to end over real sockets: envelope, status codes, bad input, HEAD,
OPTIONS, CORS, OpenAPI. Runs on SQLite and on PostgreSQL (skipped when unreachable)."""

from __future__ import annotations

import json

import httpx

from tests.e2e._api_support import Api, api, assert_error, database_url, start_api

__all__ = ["api", "database_url"]


async def test_root_envelope_and_headers(api: Api) -> None:
    r = await api.client().get("/api/v1")
    assert r.status_code == 200
    body = r.json()
    assert body == {"success": True, "data": {"version": body["data"]["version"], "role": "serve"},
                    "message": "hivecast api"}
    assert r.headers["etag"].startswith('"')
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "ratelimit" in r.headers and "ratelimit-policy" in r.headers


async def test_framework_errors_use_the_envelope(api: Api) -> None:
    c = api.admin
    assert_error(await c.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    err = await c.delete("/api/v1")
    assert_error(err, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in err.headers["allow"]
    assert_error(await c.get("/api/v1/streams/not-an-id"), 422, "VALIDATION_ERROR")
    assert_error(await c.get("/api/v1/streams?page=0"), 422, "VALIDATION_ERROR")
    assert_error(await c.get("/api/v1/streams?size=101"), 422, "VALIDATION_ERROR")
    assert_error(await c.get("/api/v1/streams?sort=password_hash"), 422, "VALIDATION_ERROR")
    assert_error(await api.client().get("/api/v1/users"), 401, "UNAUTHORIZED")
    assert_error(await api.client().get("/api/v1/streams/" + "0" * 32), 401, "UNAUTHORIZED")


async def test_malformed_json_wrong_types_unknown_fields_store_nothing(api: Api) -> None:
    c = api.admin
    hdrs = {"content-type": "application/json"}
    assert_error(await c.post("/api/v1/streams", content=b'{"name": "x",', headers=hdrs), 400, "MALFORMED_JSON")
    assert_error(await c.post("/api/v1/streams", content=b"\xff\xfe\x00", headers=hdrs), 400)
    err = assert_error(await c.post("/api/v1/streams", json={"name": 42}), 422, "VALIDATION_ERROR")
    assert err["details"][0]["field"] == "name"
    err = assert_error(await c.post("/api/v1/streams", json={"name": "ok1", "is_admin": True}), 422)
    assert {"field": "is_admin", "message": "unknown field"} in err["details"]
    assert_error(await c.post("/api/v1/streams", json=["name", "x"]), 422)
    assert_error(await c.post("/api/v1/streams", json={"name": "ok2", "title": None}), 422)
    assert_error(await c.post("/api/v1/users", json={"username": "u1", "password": "password123",
                                                     "role": "admin", "disabled": 0}), 422)
    assert_error(await c.post("/api/v1/streams", content=b"name=x",
                              headers={"content-type": "application/x-www-form-urlencoded"}), 415)
    r = await c.get("/api/v1/streams")
    assert r.json()["pagination"]["total"] == 0, r.text


async def test_huge_bodies_are_refused_before_reading(api: Api) -> None:
    big = json.dumps({"name": "big", "title": "x" * (2 * 1024 * 1024)})
    assert_error(await api.admin.post("/api/v1/streams", content=big,
                                      headers={"content-type": "application/json"}), 413, "PAYLOAD_TOO_LARGE")

    async def chunks():  # no Content-Length: the limit is counted while streaming
        for _ in range(40):
            yield b"x" * 65536

    r = await api.admin.post("/api/v1/streams", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413)
    assert (await api.admin.get("/api/v1/streams")).json()["pagination"]["total"] == 0


async def test_sql_and_script_strings_are_data_not_code(api: Api) -> None:
    c = api.admin
    for name in ["x'; DROP TABLE streams;--", "<script>alert(1)</script>", "../../etc/passwd", "a/b",
                 "..", "name%00", "名前", " lead", "a" * 65]:
        assert_error(await c.post("/api/v1/streams", json={"name": name}), 422)
    title = "'; DROP TABLE users; -- <script>alert(1)</script>"
    r = await c.post("/api/v1/streams", json={"name": "safe", "title": title})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    again = await c.get(r.headers["location"])
    assert again.json()["data"]["title"] == title
    users = await c.get("/api/v1/users", params={"username": "admin' OR '1'='1"})
    assert users.status_code == 200 and users.json()["data"] == []
    assert (await c.get("/api/v1/users")).json()["pagination"]["total"] == 1
    # Traversal in the path never reaches a handler as an id.
    for path in ["/api/v1/streams/..%2F..%2Fetc%2Fpasswd", "/api/v1/videos/%2e%2e/upload",
                 "/api/v1/streams/%2e%2e%2fusers"]:
        r = await c.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert_error(r, r.status_code)


async def test_head_and_options(api: Api) -> None:
    c = api.admin
    get = await c.get("/api/v1/streams")
    head = await c.head("/api/v1/streams")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    opt = await c.request("OPTIONS", "/api/v1/streams")
    assert opt.status_code == 204
    assert set(opt.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    opt = await c.request("OPTIONS", "/api/v1/streams/" + "a" * 32)
    assert set(opt.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT"}


async def test_cors_by_configured_origins(node_factory) -> None:
    api = await start_api(node_factory, cors_origins=["https://app.example"])
    try:
        pre = await api.client().request("OPTIONS", "/api/v1/streams", headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        bad = await api.client().request("OPTIONS", "/api/v1/streams", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in bad.headers
        simple = await api.admin.get("/api/v1/streams", headers={"origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert "etag" in simple.headers["access-control-expose-headers"].lower()
    finally:
        await api.close()


async def test_openapi_lists_every_status_code(api: Api) -> None:
    r = await httpx.AsyncClient(base_url=api.base).get("/api/v1/openapi.json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])
    ops = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ops += 1
            codes = set(op["responses"])
            assert {"400", "401", "403", "413", "415", "422", "429", "500"} <= codes, (method, path)
            if method == "get":
                assert "304" in codes, path
            if "{" in path:
                assert "404" in codes, (method, path)
    assert ops >= 35
    docs = await httpx.AsyncClient(base_url=api.base).get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_nul_characters_are_refused(api: Api) -> None:
    c = api.admin
    assert_error(await c.post("/api/v1/streams", json={"name": "nul", "title": "a\x00b"}), 422)
    assert_error(await c.get("/api/v1/users", params={"username": "a\x00"}), 422)
    assert_error(await c.get(f"/api/v1/videos/{'0' * 32}/comments/{2**40}"), 422)
    assert (await c.get("/api/v1/streams")).json()["pagination"]["total"] == 0


async def test_store_outage_is_a_503_envelope(node_factory) -> None:
    from tests.e2e._api_support import _pg_reachable, create_pg_database, drop_pg_database

    reason = await _pg_reachable()
    if reason:
        import pytest

        pytest.skip(reason)
    name = await create_pg_database()
    try:
        api = await start_api(node_factory, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
        assert (await api.admin.get("/api/v1/streams")).status_code == 200
        await drop_pg_database(name)  # the database disappears under the running node
        for _ in range(2):
            r = await api.admin.get("/api/v1/streams")
            assert_error(r, 503, "SERVICE_UNAVAILABLE")
            assert r.headers["retry-after"] == "1"
        await api.close()
    finally:
        await drop_pg_database(name)
