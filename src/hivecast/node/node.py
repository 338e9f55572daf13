"""A node: its components, started in order and stopped in reverse, under one deadline.

Components are the capabilities a role needs (the store, live ingest, the front door, ...). Each
has `start(node)` and `stop()`; long-running work goes through `node.spawn()` so it belongs to the
node's task group and is cancelled when the node stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from hivecast.config import Settings
from hivecast.events import InProcessBus
from hivecast.http import Router
from hivecast.metrics import NodeMetrics
from hivecast.net.errors import NetError

log = logging.getLogger(__name__)


class StartupError(Exception):
    """A component could not start; the message is one line for the user."""


class Component(Protocol):
    name: str

    async def start(self, node: Node) -> None: ...
    async def stop(self) -> None: ...


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Everything loaded by the time a node has started (modules, routes, schemas: most of the heap)
    lives as long as the process: take it out of the collector's full passes, which scanned all of
    it every second or two under API load and stalled every request for 0.1-0.3 s each time. Once
    per process: a process running many nodes one after another (the tests) would otherwise freeze
    each one's garbage for good."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.freeze()


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.role = settings.role
        self.metrics = NodeMetrics(settings.role)
        self.bus = InProcessBus()
        self.router = Router()
        self.components: list[Component] = []
        # Typed handles components publish for each other (e.g. "live_registry", "store").
        self.services: dict[str, Any] = {}
        self._started: list[Component] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.ready = asyncio.Event()

    def add(self, component: Component) -> None:
        self.components.append(component)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run background work owned by the node: an unexpected failure is logged, never silent."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None and not self._stopping:
                log.error("background task %s failed: %r", name, t.exception(),
                          exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def start(self) -> None:
        for component in self.components:
            try:
                await component.start(self)
            except NetError as exc:
                await self.stop()
                raise StartupError(f"{component.name}: {exc}") from None
            except StartupError:
                await self.stop()
                raise
            self._started.append(component)
            log.debug("started %s", component.name)
        freeze_startup_heap()
        self.ready.set()

    async def stop(self, grace: float | None = None) -> None:
        self._stopping = True
        deadline = time.monotonic() + (self.settings.limits.shutdown_grace if grace is None else grace)
        while self._started:
            component = self._started.pop()
            remaining = max(0.05, deadline - time.monotonic())
            try:
                async with asyncio.timeout(remaining):
                    await component.stop()
            except TimeoutError:
                log.warning("%s did not stop within its deadline", component.name)
            except Exception:
                log.exception("%s failed while stopping", component.name)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(list(self._tasks), timeout=max(0.05, deadline - time.monotonic()))

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
