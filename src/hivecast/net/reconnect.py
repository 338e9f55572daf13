"""One long-lived outgoing connection kept alive: relays and pull sources of every protocol.

A `Reconnecting` owns one task that runs `attempt()` (one connection's worth of work, which
returns or raises when the connection is lost) again and again, waiting with exponential back-off
in between. The back-off starts afresh after an attempt that lasted a while, so a source that
drops once an hour is retried at once, while one that refuses every connection is not hammered.
`status()` is what the API and the CLI show about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from hivecast.net.errors import NetError

log = logging.getLogger(__name__)

RESET_AFTER = 30.0  # seconds: an attempt that lasted longer restarts the back-off from its minimum
STOP_TIMEOUT = 2.0


class Backoff:
    """The waits between attempts: doubling from `minimum` up to `maximum`, reset by a long attempt.

    With `jitter` each wait is drawn from [half, all] of the current step, so relays that lost the
    same peer at once do not all come back at once."""

    def __init__(self, minimum: float, maximum: float, *, jitter: bool = False,
                 rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.jitter = jitter
        self.step = minimum
        self._rng = rng or random.Random()

    def next(self, ran_for: float) -> float:
        """The wait after an attempt that lasted `ran_for` seconds."""
        if ran_for > RESET_AFTER:
            self.step = self.minimum
        delay = self.step * (0.5 + self._rng.random() / 2) if self.jitter else self.step
        self.step = min(self.maximum, self.step * 2)
        return delay


class Reconnecting:
    """Subclasses set `kind` and `expected` and implement `attempt()` (and `wait_ready()` if they
    must wait for something before connecting); they call `running()` once media flows and add
    what they carry to `bytes`."""

    kind = "relay"
    # Failures that are part of life (the peer is away, refuses, times out): one log line each.
    # Anything else is logged with its traceback, and retried all the same.
    expected: tuple[type[BaseException], ...] = (NetError, OSError, TimeoutError)

    def __init__(self, name: str, url: str, *, min_backoff: float = 1.0, max_backoff: float = 30.0,
                 jitter: bool = False) -> None:
        self.name = name
        self.url = url
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter  # spread the retries of many relays that lost the same peer
        self.state = "idle"
        self.attempts = 0
        self.last_error = ""
        self.bytes = 0
        self.connected_since = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.attempts - 1)

    def status(self) -> dict[str, Any]:
        connected_for = round(time.monotonic() - self.connected_since, 1) if self.state == "running" else 0.0
        return {"kind": self.kind, "name": self.name, "url": self.url, "state": self.state,
                "attempts": self.attempts, "reconnects": self.reconnects, "last_error": self.last_error,
                "bytes": self.bytes, "connected_for": connected_for}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"{self.kind} {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, STOP_TIMEOUT)
            self._task = None
        self.state = "stopped"

    def running(self) -> None:
        """The connection is up and carrying media."""
        self.state = "running"
        self.connected_since = time.monotonic()

    async def wait_ready(self) -> None:
        """Called before every attempt; not counted as one (a push waits here for its local stream)."""

    async def attempt(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        backoff = Backoff(self.min_backoff, self.max_backoff, jitter=self.jitter)
        while True:
            await self.wait_ready()
            self.attempts += 1
            started = time.monotonic()
            try:
                await self.attempt()
                self.last_error = ""
            except self.expected as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("%s %s <-> %s: %s", self.kind, self.name, self.url, self.last_error)
            except Exception as exc:
                self.last_error = repr(exc)
                log.exception("%s %s <-> %s failed", self.kind, self.name, self.url)
            self.state = "retrying"
            await asyncio.sleep(backoff.next(time.monotonic() - started))
