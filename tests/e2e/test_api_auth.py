"""Authentication and authorization end to end: login, token expiry, refresh rotation and reuse
detection, logout, API keys (scopes, revocation), and each role against each resource."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from hivecast.auth.tokens import issue_access_token, load_or_create_secret
from tests.e2e._api_support import ADMIN, Api, api, assert_error, database_url, start_api

__all__ = ["api", "database_url"]
MERGE = {"content-type": "application/merge-patch+json"}


async def test_login_failures_look_the_same(api: Api) -> None:
    c = api.client()
    a = assert_error(await c.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-pass"}),
                     401, "INVALID_CREDENTIALS")
    b = assert_error(await c.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-pass"}),
                     401, "INVALID_CREDENTIALS")
    assert a == b


async def test_expired_and_forged_tokens_are_refused(api: Api) -> None:
    me = (await api.admin.get("/api/v1/auth/me")).json()["data"]
    secret = load_or_create_secret(api.node.settings.data_dir, None)
    expired = issue_access_token(secret=secret, subject=me["id"], role="admin", ttl=60, now=time.time() - 3600)
    r = await api.client({"authorization": f"Bearer {expired}"}).get("/api/v1/auth/me")
    assert_error(r, 401, "INVALID_TOKEN")
    assert r.headers["www-authenticate"].startswith("Bearer")
    forged = issue_access_token(secret="x" * 48, subject=me["id"], role="admin")
    assert_error(await api.client({"authorization": f"Bearer {forged}"}).get("/api/v1/auth/me"), 401)
    assert_error(await api.client({"authorization": "Bearer not.a.jwt"}).get("/api/v1/auth/me"), 401)
    fresh = issue_access_token(secret=secret, subject=me["id"], role="admin", ttl=60)
    assert (await api.client({"authorization": f"Bearer {fresh}"}).get("/api/v1/auth/me")).status_code == 200


async def test_refresh_rotation_and_reuse_revokes_the_family(api: Api) -> None:
    c = api.client()
    first = await api.login(*ADMIN)
    r = await c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api.client({"authorization": f"Bearer {second['access_token']}"})
            .get("/api/v1/auth/me")).status_code == 200
    # The old token comes back (stolen copy): refused, and the whole login is revoked.
    assert_error(await c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}),
                 401, "TOKEN_REUSED")
    assert_error(await c.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401)
    # Another login is unaffected.
    other = await api.login(*ADMIN)
    assert (await c.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 200
    assert_error(await c.post("/api/v1/auth/refresh", json={"refresh_token": "garbage"}), 401)
    assert_error(await c.post("/api/v1/auth/refresh", json={"refresh_token": "a" * 32 + ".x"}), 401)


async def test_logout_revokes_refresh_and_access(api: Api) -> None:
    tokens = await api.login(*ADMIN)
    c = api.client({"authorization": f"Bearer {tokens['access_token']}"})
    assert (await c.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})).status_code == 204
    assert_error(await c.get("/api/v1/auth/me"), 401)
    assert_error(await api.client().post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
                 401)


async def test_disabled_user_loses_access_at_once(api: Api) -> None:
    viewer, uid = await api.user("viewer")
    assert (await viewer.get("/api/v1/auth/me")).status_code == 200
    r = await api.admin.patch(f"/api/v1/users/{uid}", json={"disabled": True},
                              headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["data"]["disabled"] is True
    assert_error(await viewer.get("/api/v1/auth/me"), 401)


async def test_api_keys_scopes_and_revocation(api: Api) -> None:
    r = await api.admin.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read", "write"]})
    assert r.status_code == 201
    key = r.json()["data"]
    assert key["key"].startswith("hck_") and key["prefix"] in key["key"]
    listed = (await api.admin.get("/api/v1/api-keys")).json()["data"]
    assert all("key" not in k for k in listed)  # the secret is shown once
    machine = api.client({"x-api-key": key["key"]})
    assert (await machine.get("/api/v1/auth/me")).json()["data"]["via"] == "api_key"
    assert (await machine.post("/api/v1/streams", json={"name": "bykey"})).status_code == 201

    ro = (await api.admin.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["read"]})).json()["data"]
    reader = api.client({"x-api-key": ro["key"]})
    assert (await reader.get("/api/v1/streams")).status_code == 200
    assert_error(await reader.post("/api/v1/streams", json={"name": "nope"}), 403, "INSUFFICIENT_SCOPE")

    r = await api.admin.post(f"/api/v1/api-keys/{key['id']}/revoke")
    assert r.status_code == 200 and r.json()["data"]["revoked"] is True
    assert_error(await machine.get("/api/v1/auth/me"), 401, "INVALID_API_KEY")
    assert (await api.admin.delete(f"/api/v1/api-keys/{ro['id']}")).status_code == 204
    assert (await api.admin.delete(f"/api/v1/api-keys/{ro['id']}")).status_code == 204  # idempotent
    assert_error(await reader.get("/api/v1/streams"), 401, "INVALID_API_KEY")
    wrong = ro["key"][:-4] + "AAAA"
    assert_error(await api.client({"x-api-key": wrong}).get("/api/v1/streams"), 401)
    assert_error(await api.client({"x-api-key": "hck_nonsense"}).get("/api/v1/streams"), 401)


# (method, path, body) per resource; "{own}" is a stream of the caller's, "{other}" someone else's.
ACTIONS = {
    "list users": ("GET", "/api/v1/users", None),
    "create user": ("POST", "/api/v1/users", {"username": "made-{n}", "password": "password123"}),
    "list streams": ("GET", "/api/v1/streams", None),
    "create stream": ("POST", "/api/v1/streams", {"name": "s-{n}"}),
    "read other's stream": ("GET", "/api/v1/streams/{other}", None),
    "change other's stream": ("PATCH", "/api/v1/streams/{other}", {"title": "mine now"}),
    "create video": ("POST", "/api/v1/videos", {"title": "v", "size": 10}),
    "list videos": ("GET", "/api/v1/videos", None),
    "list edges": ("GET", "/api/v1/edges", None),
    "create purge": ("POST", "/api/v1/purges", {"kind": "url", "values": ["/live/x/index.m3u8"]}),
    "list purges": ("GET", "/api/v1/purges", None),
    "create api key": ("POST", "/api/v1/api-keys", {"name": "k"}),
}
EXPECTED = {
    "admin": {"list users": 200, "create user": 201, "list streams": 200, "create stream": 201,
              "read other's stream": 200, "change other's stream": 200, "create video": 201, "list videos": 200,
              "list edges": 200, "create purge": 201, "list purges": 200, "create api key": 201},
    "streamer": {"list users": 200, "create user": 403, "list streams": 200, "create stream": 201,
                 "read other's stream": 404, "change other's stream": 404, "create video": 201,
                 "list videos": 200, "list edges": 403, "create purge": 403, "list purges": 403,
                 "create api key": 201},
    "viewer": {"list users": 200, "create user": 403, "list streams": 200, "create stream": 403,
               "read other's stream": 404, "change other's stream": 404, "create video": 403,
               "list videos": 200, "list edges": 403, "create purge": 403, "list purges": 403,
               "create api key": 201},
}


@pytest.mark.parametrize("role", ["admin", "streamer", "viewer"])
async def test_each_role_against_each_resource(node_factory, role: str) -> None:
    api = await start_api(node_factory)
    try:
        owner, _ = await api.user("streamer")
        other = (await owner.post("/api/v1/streams", json={"name": "theirs"})).json()["data"]["id"]
        if role == "admin":
            client = api.admin
        else:
            client, _ = await api.user(role)
        seen = {}
        for n, (action, (method, path, body)) in enumerate(ACTIONS.items()):
            path = path.format(other=other)
            if body is not None:
                body = {k: v.format(n=n) if isinstance(v, str) else v for k, v in body.items()}
            headers = {"content-type": "application/merge-patch+json"} if method == "PATCH" else {}
            r = await client.request(method, path, json=body, headers=headers)
            seen[action] = r.status_code
            if r.status_code >= 400:
                assert_error(r, r.status_code)
        assert seen == EXPECTED[role]
        # A streamer's list holds only their own streams; the owner still sees theirs unchanged.
        if role != "admin":
            names = [s["name"] for s in (await client.get("/api/v1/streams")).json()["data"]]
            assert "theirs" not in names
            users = (await client.get("/api/v1/users")).json()
            assert users["pagination"]["total"] == 1
        mine = (await owner.get(f"/api/v1/streams/{other}")).json()["data"]
        assert mine["title"] == ("mine now" if role == "admin" else "")
    finally:
        await api.close()


async def test_non_admin_cannot_raise_own_role(api: Api) -> None:
    viewer, uid = await api.user("viewer")
    r = await viewer.patch(f"/api/v1/users/{uid}", json={"role": "admin"},
                           headers={"content-type": "application/merge-patch+json"})
    assert_error(r, 403)
    r = await viewer.patch(f"/api/v1/users/{uid}", json={"display_name": "Vee"},
                           headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["data"]["role"] == "viewer"
    assert_error(await viewer.delete(f"/api/v1/users/{uid}"), 403)


async def test_rate_limit_headers_and_429(node_factory) -> None:
    api = await start_api(node_factory, rate_limit=5, rate_limit_ip=3, rate_window=60)
    try:
        seen = []
        for _ in range(6):
            r = await api.admin.get("/api/v1/streams")
            seen.append(r.status_code)
            assert r.headers["ratelimit-policy"] == '"user";q=5;w=60'
        assert seen[-1] == 429
        err = assert_error(r, 429, "RATE_LIMITED")
        assert err["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit"].startswith('"user";r=0;')
        # Another caller has its own bucket; anonymous callers share their IP's.
        anon = [(await api.client().get("/api/v1")).status_code for _ in range(4)]
        assert anon[:2] == [200, 200] and anon[-1] == 429
    finally:
        await api.close()


async def test_login_attempts_are_limited_per_ip(node_factory) -> None:
    api = await start_api(node_factory, rate_limit_login=3)
    try:
        c = httpx.AsyncClient(base_url=api.base)
        api.clients.append(c)
        codes = [(await c.post("/api/v1/auth/login", json={"username": "admin", "password": "nopenope"})).status_code
                 for _ in range(4)]
        assert codes[-1] == 429 and 401 in codes
    finally:
        await api.close()


async def test_redis_rate_limits_span_nodes(node_factory) -> None:
    try:
        import redis.asyncio as aredis

        probe = aredis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
        await probe.ping()
    except Exception as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 not reachable: {type(exc).__name__}")
    bucket = "hivecast:rl:ip:127.0.0.1"
    redis_flags = {"redis_url": "redis://127.0.0.1:6379/0"}
    a = await start_api(node_factory, node_flags=redis_flags, rate_limit_ip=4, rate_window=3600)
    b = await start_api(node_factory, node_flags=redis_flags, rate_limit_ip=4, rate_window=3600)
    try:
        await probe.delete(bucket)  # anonymous callers from 127.0.0.1 share one bucket on every node
        codes = [(await a.client().get("/api/v1")).status_code for _ in range(2)]
        codes += [(await b.client().get("/api/v1")).status_code for _ in range(2)]
        assert codes == [200, 200, 200, 200]
        last = await a.client().get("/api/v1")
        assert_error(last, 429, "RATE_LIMITED")
        assert last.headers["ratelimit-policy"] == '"ip";q=4;w=3600'
        assert_error(await b.client().get("/api/v1"), 429)
    finally:
        await probe.delete(bucket)
        await probe.aclose()
        await a.close()
        await b.close()


async def test_revocations_reach_other_nodes_at_once_through_redis(node_factory, tmp_path, monkeypatch) -> None:
    """Two nodes on one database and one Redis: a key revoked, a user disabled or a token logged
    out on one is refused by the other at once, though the other had the credential cached."""
    try:
        import redis.asyncio as aredis

        probe = aredis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
        await probe.ping()
        await probe.aclose()
    except Exception as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 not reachable: {type(exc).__name__}")
    # Cached credentials would outlive the whole test: only the feed can make b refuse them.
    monkeypatch.setattr("hivecast.api.context.AUTH_CACHE_SECONDS", 3600.0)
    shared = {"redis_url": "redis://127.0.0.1:6379/0", "auth": {"jwt_secret": "s" * 40},
              "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"}
    a = await start_api(node_factory, node_flags=shared)
    b = await start_api(node_factory, node_flags=shared)
    try:
        for node in (a, b):
            await asyncio.wait_for(node.node.services["api_context"].feed.ready.wait(), 10)
        key = (await a.admin.post("/api/v1/api-keys", json={"name": "roaming"})).json()["data"]["key"]
        on_b = b.client({"x-api-key": key})
        assert (await on_b.get("/api/v1/streams")).status_code == 200  # now cached on b
        key_id = (await a.admin.get("/api/v1/api-keys")).json()["data"][0]["id"]
        assert (await a.admin.delete(f"/api/v1/api-keys/{key_id}")).status_code == 204
        await _eventually(lambda: on_b.get("/api/v1/streams"), 401)

        await a.user("viewer", "roamer")
        tokens = await a.login("roamer", "password123")
        viewer = a.client({"authorization": f"Bearer {tokens['access_token']}"})
        viewer_on_b = b.client({"authorization": f"Bearer {tokens['access_token']}"})
        assert (await viewer_on_b.get("/api/v1/auth/me")).status_code == 200
        r = await viewer.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        await _eventually(lambda: viewer_on_b.get("/api/v1/auth/me"), 401)

        streamer, sid = await a.user("streamer")
        streamer_on_b = b.client({"authorization": streamer.headers["authorization"]})
        assert (await streamer_on_b.get("/api/v1/auth/me")).status_code == 200
        r = await a.admin.patch(f"/api/v1/users/{sid}", json={"disabled": True}, headers=MERGE)
        assert r.status_code == 200, r.text
        await _eventually(lambda: streamer_on_b.get("/api/v1/auth/me"), 401)
    finally:
        await a.close()
        await b.close()


async def _eventually(request: Any, status: int) -> None:
    deadline = asyncio.get_running_loop().time() + 20.0
    while True:
        r = await request()
        if r.status_code == status or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == status, r.text
