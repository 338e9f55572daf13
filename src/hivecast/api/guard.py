"""The pure-ASGI layer in front of every route: rate limits (with their headers on every
answer), request body limits, content types, HEAD and OPTIONS, and safe response headers.

It runs before routing and before any body is read, so an over-limit or malformed request
costs almost nothing and never reaches a handler."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from hivecast.api.context import ApiContext
from hivecast.api.errors import error_body
from hivecast.api.ratelimit import Decision
from hivecast.api.redis_limits import take
from hivecast.api.security import parse_api_key
from hivecast.auth.tokens import InvalidToken, decode_access_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_TYPE = "application/offset+octet-stream"
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_SAFE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                 (b"referrer-policy", b"no-referrer")]
_UNLIMITED_PREFIXES = ("/api/v1/docs", "/api/v1/openapi.json")


class BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(413, "request body too large")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


class Guard:
    def __init__(self, app: App, ctx: ApiContext, openapi: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.ctx = ctx
        self.openapi = openapi
        self._route_table: list[tuple[re.Pattern[str], set[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        decision = await self._rate_limit(scope, path, method)
        extra = [(k.encode(), v.encode()) for k, v in decision.headers()] if decision else []
        extra += _SAFE_HEADERS

        async def reply(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            body = error_body(status, message)
            hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"), *extra, *(headers or [])]
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})

        if decision is not None and not decision.allowed:
            await reply(429, "rate limit exceeded; retry later")
            return

        if method == "OPTIONS" and _header(scope, b"access-control-request-method") is None:
            allowed = self._allowed_methods(scope)
            if allowed:
                hdrs = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0"), *extra]
                await send({"type": "http.response.start", "status": 204, "headers": hdrs})
                await send({"type": "http.response.body", "body": b""})
                return

        head = method == "HEAD"
        if head:
            scope = dict(scope)
            scope["method"] = "GET"

        limit = self._body_limit(path)
        length_raw = _header(scope, b"content-length")
        chunked = (_header(scope, b"transfer-encoding") or "").lower().endswith("chunked")
        has_body = chunked or (length_raw not in (None, "0"))
        if length_raw is not None:
            try:
                length = int(length_raw)
            except ValueError:
                await reply(400, "invalid content-length")
                return
            if length > limit:
                await reply(413, f"request body over {limit} bytes")
                return
        if has_body and method in ("POST", "PUT", "PATCH") and not path.startswith(_UNLIMITED_PREFIXES):
            ctype = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
            wanted = (UPLOAD_TYPE,) if path.endswith("/upload") else _JSON_TYPES
            if ctype not in wanted:
                await reply(415, f"content-type must be {' or '.join(wanted)}")
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *extra]
            elif head and message["type"] == "http.response.body":
                message = dict(message)
                message["body"] = b""
            await send(message)

        await self.app(scope, limited_receive, send_wrapper)

    def _body_limit(self, path: str) -> int:
        api = self.ctx.settings.api
        return api.upload_chunk_bytes if path.endswith("/upload") else api.max_json_bytes

    async def _rate_limit(self, scope: Scope, path: str, method: str) -> Decision | None:
        if path.startswith(_UNLIMITED_PREFIXES):
            return None
        client = scope.get("client")
        ip = str(client[0]) if client else "?"
        if path == "/api/v1/auth/login" and method == "POST":
            login = await take(self.ctx.login_limits, ip)
            if not login.allowed:
                return login
        key = _header(scope, b"x-api-key")
        if key:
            prefix = parse_api_key(key)
            if prefix is not None:
                return await take(self.ctx.user_limits, "key:" + prefix)
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            try:
                claims = decode_access_token(auth[7:].strip(), secret=self.ctx.secret)
            except InvalidToken:
                pass
            else:
                return await take(self.ctx.user_limits, "user:" + claims.subject)
        return await take(self.ctx.ip_limits, ip)

    def _allowed_methods(self, scope: Scope) -> list[str]:
        # FastAPI's routing internals change between releases; the OpenAPI document is stable.
        if self._route_table is None:
            table: list[tuple[re.Pattern[str], set[str]]] = []
            for template, ops in self.openapi().get("paths", {}).items():
                regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                table.append((re.compile(regex + "$"), {m.upper() for m in ops}))
            self._route_table = table
        methods: set[str] = set()
        for pattern, ops in self._route_table:
            if pattern.match(scope["path"]):
                methods |= ops
        if not methods:
            return []
        if "GET" in methods:
            methods.add("HEAD")
        methods.add("OPTIONS")
        return sorted(methods)
