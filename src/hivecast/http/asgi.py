"""Passing front-door requests to an ASGI application (the FastAPI REST API).

The app answers through `send()`; a response whose whole body comes in one message goes out in
one write, longer ones stream with back-pressure from our transport to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from hivecast.http.message import Request, Response

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AsgiHandler:
    def __init__(self, app: AsgiApp, *, scheme: str = "http", state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.scheme = scheme
        self.state = state if state is not None else {}

    async def __call__(self, request: Request) -> Response:
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "method": request.method,
            "scheme": "https" if request.scheme == "https" else self.scheme,
            "path": request.path,
            "raw_path": request.raw_path.encode("latin-1"),
            "query_string": request.query_string.encode("latin-1"),
            "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
            "client": request.client,
            "server": request.server,
            "state": dict(self.state),
        }
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[int, list[tuple[str, str]]]] = loop.create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        finished = asyncio.Event()
        body_done = False

        async def receive() -> Message:
            nonlocal body_done
            if not body_done:
                chunk = await request.body.chunk()
                if not chunk:
                    body_done = True
                return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                if not started.done():
                    started.set_result((int(message["status"]), headers))
            elif kind == "http.response.body":
                body = bytes(message.get("body", b""))
                if body:
                    await chunks.put(body)
                if not message.get("more_body", False):
                    await chunks.put(None)

        async def run_app() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("ASGI app returned without a response"))
                with contextlib.suppress(asyncio.QueueFull):
                    chunks.put_nowait(None)

        task = loop.create_task(run_app())
        try:
            status, headers = await started
        except Exception:
            finished.set()
            with contextlib.suppress(BaseException):
                await task
            raise
        first = await chunks.get()
        if first is None:
            finished.set()
            await _settle(task)
            return Response(status, headers, b"")
        second = await chunks.get()
        if second is None:
            finished.set()
            await _settle(task)
            return Response(status, headers, first)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield first
                yield second
                while (chunk := await chunks.get()) is not None:
                    yield chunk
            finally:
                finished.set()
                if not task.done():
                    task.cancel()
                await _settle(task)

        return Response(status, headers, stream())


async def _settle(task: asyncio.Task[None]) -> None:
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("ASGI application failed after sending its response")


class AsgiLifespan:
    """Runs the app's lifespan protocol: startup before the node serves, shutdown after."""

    def __init__(self, app: AsgiApp, state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.state = state if state is not None else {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception as exc:
            self.supported = False
            await self._outbox.put({"type": "lifespan.startup.failed", "message": repr(exc), "unsupported": True})

    async def _exchange(self, kind: str, timeout: float) -> None:
        await self._inbox.put({"type": f"lifespan.{kind}"})
        async with asyncio.timeout(timeout):
            reply = await self._outbox.get()
        if reply["type"].endswith(".failed"):
            if reply.get("unsupported"):
                return
            raise RuntimeError(f"ASGI {kind} failed: {reply.get('message', '')}")

    async def startup(self, timeout: float = 30.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._exchange("startup", timeout)

    async def shutdown(self, timeout: float = 5.0) -> None:
        if self._task is None:
            return
        if self.supported and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await self._exchange("shutdown", timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
